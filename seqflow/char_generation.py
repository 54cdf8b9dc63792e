"""Import path of the character-model pyfunc in versions registered before the move to ``seqflow.charlm``.

MLflow (cloudpickle) stores a PythonModel by the module path of its class, so every character-model version
registered by an earlier release unpickles ``seqflow.char_generation.CharGenerationModel``. This module keeps that
path importable; new code imports :mod:`seqflow.charlm.generate`.

seqflow itself never unpickles them (it builds the class from installed code, see :mod:`seqflow.core.trusted_models`);
the path stays for MLflow's own loaders (``mlflow.pyfunc.load_model``, ``mlflow models serve``) used directly.
"""

from seqflow.charlm.generate import CharGenerationModel

__all__ = ["CharGenerationModel"]
