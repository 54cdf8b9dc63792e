"""Import path of the sentiment pyfunc in versions registered before the move to ``seqflow.sentiment``.

MLflow (cloudpickle) stores a PythonModel by the module path of its class, so every version registered by an
earlier release unpickles ``seqflow.serving.ReviewSentimentModel``. This module keeps that path importable; new
code imports :mod:`seqflow.sentiment.serving`.

seqflow itself never unpickles them (it builds the class from installed code, see :mod:`seqflow.core.trusted_models`);
the path stays for MLflow's own loaders (``mlflow.pyfunc.load_model``, ``mlflow models serve``) used directly.
"""

from seqflow.sentiment.serving import ReviewSentimentModel

__all__ = ["ReviewSentimentModel"]
