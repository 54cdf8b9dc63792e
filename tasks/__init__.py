"""Prefect tasks (imported as ``seqflow.tasks``): thin wrappers around the plain functions in ``seqflow``.

Each task only adapts a plain, typed, separately tested function to Prefect (names, retries, logging). Only
tasks that do I/O against something that can fail transiently (loading a source) retry, and never on a
:class:`~seqflow.core.errors.SeqflowError`, which means bad input that a retry cannot fix.
"""
