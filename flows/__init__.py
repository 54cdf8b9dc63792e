"""Prefect flows (imported as ``seqflow.flows``): they only wire tasks together."""
