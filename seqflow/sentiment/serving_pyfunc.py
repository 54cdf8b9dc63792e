"""The models-from-code file of the review sentiment pyfunc (see :mod:`seqflow.core.trusted_models`).

``mlflow.pyfunc.save_model(python_model=<this file>)`` runs it to find the model and copies it into the logged
model. seqflow's own loader never runs the stored copy: it builds :class:`ReviewSentimentModel` from installed
code. ``seqflow serve`` hands ``mlflow models serve`` a folder whose copy of this file is the installed one.
Never imported as a module: running it is what hands the model to MLflow.
"""

import mlflow.models

from seqflow.sentiment.serving import ReviewSentimentModel

mlflow.models.set_model(ReviewSentimentModel())
