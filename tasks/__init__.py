"""Prefect tasks (imported as ``seqflow.tasks``): one per pipeline step, the decorated function being the step.

``sentiment.py`` and ``charlm.py`` hold each pipeline's steps, named like their Prefect task and their rerun
name, each with its cache declaration at its decorator; they call the plain, typed pandas/Keras code in
``seqflow.sentiment`` / ``seqflow.charlm`` (free of Prefect and MLflow) and track through
``seqflow.core.tracking``. ``tracking.py`` opens and closes the executions' MLflow runs. Only tasks that do I/O
against something that can fail transiently (loading a source) retry, and never on a
:class:`~seqflow.core.errors.SeqflowError`, which means bad input that a retry cannot fix.
"""
