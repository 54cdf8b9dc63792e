"""Logged and registered models: logging a pyfunc to a run, downloading and loading one, serving one.

Which pyfunc a pipeline logs (its class, signature, input example) is the pipeline's own: it passes them in
(see :class:`seqflow.core.pipeline.Pipeline`), so nothing here knows either pipeline.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from seqflow.core.store import TrackingError, TrackingStore, _fluent_store

MODEL_ARTIFACT_PATH = "model"


def _serving_requirements() -> list[str]:
    """Pinned requirements of the served model; given explicitly so MLflow does not infer them (slow)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "tensorflow-cpu", "keras", "pandas", "numpy"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


class ModelFiles(TrackingStore):
    """Models logged to runs or registered: write, download, load, and the command that serves one."""

    def log_pyfunc_model(self, run_id: str, python_model, artifacts: dict[str, str], signature, input_example) -> str:  # noqa: ANN001
        """Log ``python_model`` with its ``artifacts`` (files) to the run; returns its ``runs:/`` URI."""
        import mlflow.pyfunc

        with tempfile.TemporaryDirectory() as scratch:
            local_path = os.path.join(scratch, MODEL_ARTIFACT_PATH)
            # save_model + log_artifacts instead of log_model: no thread-local active run is needed.
            mlflow.pyfunc.save_model(
                local_path,
                python_model=python_model,
                artifacts=artifacts,
                signature=signature,
                input_example=input_example,
                pip_requirements=_serving_requirements(),
            )
            self.client.log_artifacts(run_id, local_path, MODEL_ARTIFACT_PATH)
        return f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"

    def download_model_artifacts(self, model_uri: str, destination_dir: Path) -> Path:
        """The files of a logged or registered model (``models:/name/3``), copied to ``destination_dir``."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            with _fluent_store(self.settings.tracking_uri):
                return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination_dir)))
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot download model {model_uri!r}: {str(exc).splitlines()[0]}") from None

    def model_server_command(self, model_uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
        """``mlflow models serve`` for ``model_uri`` in this environment, and the environment it needs."""
        interpreter_bin = str(Path(sys.executable).parent)
        environment = {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.settings.tracking_uri,
            "MLFLOW_REGISTRY_URI": self.settings.tracking_uri,
            # The scoring server starts `uvicorn` by name: find the one of this environment even when it is
            # not activated.
            "PATH": os.pathsep.join([interpreter_bin, os.environ.get("PATH", "")]),
        }
        command = [
            sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
            # Our environment already has every requirement; no conda/virtualenv is built per model.
            "--env-manager", "local", "--host", host, "--port", str(port),
        ]
        return command, environment

    def load_pyfunc(self, model_uri: str):  # noqa: ANN201 - mlflow PyFuncModel
        """The model at ``model_uri``, or a :class:`TrackingError` naming where its files are and what to do.

        A registered model whose folder was deleted, or whose ``.keras`` file or ``MLmodel`` is damaged, fails
        deep inside MLflow, YAML or Keras with many different exception types; all mean "this model is unusable".
        """
        import mlflow.pyfunc

        try:
            with _fluent_store(self.settings.tracking_uri):
                return mlflow.pyfunc.load_model(model_uri)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise TrackingError(
                f"cannot load model {model_uri!r} (files at {self._model_location(model_uri)}): "
                f"{type(exc).__name__}: {reason[:300]}; its files are missing or damaged: register an intact "
                "model again with `seqflow run`, or pass --model-uri of another version"
            ) from None

    def _model_location(self, model_uri: str) -> str:
        """Where the files behind a ``models:/`` or ``runs:/`` URI are stored, or the URI itself."""
        from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        try:
            with _fluent_store(self.settings.tracking_uri):
                if model_uri.startswith("models:/"):
                    return ModelsArtifactRepository.get_underlying_uri(model_uri)
                if model_uri.startswith("runs:/"):
                    return RunsArtifactRepository.get_underlying_uri(model_uri)
        except Exception:  # noqa: BLE001 - the location only adds detail to an error already being raised
            pass
        return model_uri

    def download_serving_model(self, model_uri: str, destination_dir: Path) -> Path:
        """The ``.keras`` serving model inside a logged or registered seqflow model, downloaded locally.

        For warm starts: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``runs:/RUN_ID/model``.
        """
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        destination_dir = Path(destination_dir)
        destination_dir.mkdir(parents=True, exist_ok=True)
        try:
            with _fluent_store(self.settings.tracking_uri):
                local_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination_dir)))
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot download model {model_uri!r}: {str(exc).splitlines()[0]}") from None
        keras_files = sorted(local_dir.rglob("*.keras"))
        if len(keras_files) != 1:
            raise TrackingError(
                f"model {model_uri!r} is not a seqflow serving model: expected one .keras file, found {len(keras_files)}"
            )
        return keras_files[0]
