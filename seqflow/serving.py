"""Import path of the sentiment pyfunc in versions registered before the move to ``seqflow.sentiment``.

MLflow (cloudpickle) stores a PythonModel by the module path of its class, so every version registered by an
earlier release unpickles ``seqflow.serving.ReviewSentimentModel``. This module keeps that path importable; new
code imports :mod:`seqflow.sentiment.serving`.
"""

from seqflow.sentiment.serving import ReviewSentimentModel

__all__ = ["ReviewSentimentModel"]
