"""seqflow.core."""
