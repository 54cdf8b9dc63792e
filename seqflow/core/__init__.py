"""Machinery every pipeline shares: runs, registry and promotion, caching, checkpoints, execution state, settings,
files, errors and logs. Nothing here imports a pipeline (``seqflow.sentiment``, ``seqflow.charlm``)."""
