"""seqflow.sentiment."""
