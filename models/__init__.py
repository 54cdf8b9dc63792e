"""Keras model builders (imported as ``seqflow.models``).

This package builds Keras layers and models only: it never compiles, fits or logs. Training, evaluation and
tracking live in ``seqflow.sentiment.train``, ``seqflow.core.evaluation`` and ``seqflow.core.tracking``.
"""
