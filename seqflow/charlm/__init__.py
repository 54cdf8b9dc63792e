"""seqflow.charlm."""
