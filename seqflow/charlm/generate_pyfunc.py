"""The models-from-code file of the character generation pyfunc (see :mod:`seqflow.core.trusted_models`).

``mlflow.pyfunc.save_model(python_model=<this file>)`` runs it to find the model and copies it into the logged
model. seqflow's own loader never runs the stored copy: it builds :class:`CharGenerationModel` from installed
code. Never imported as a module: running it is what hands the model to MLflow.
"""

import mlflow.models

from seqflow.charlm.generate import CharGenerationModel

mlflow.models.set_model(CharGenerationModel())
