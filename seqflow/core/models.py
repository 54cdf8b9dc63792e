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
from seqflow.core.trusted_models import MODEL_DIGESTS_TAG, PyfuncKind, digests_text, save_from_code

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

    def log_pyfunc_model(self, run_id: str, kind: PyfuncKind, artifacts: dict[str, str], signature, input_example) -> str:  # noqa: ANN001
        """Log ``kind`` as a models-from-code pyfunc with its ``artifacts`` (files) as an MLflow 3 logged model of
        the run (the experiment's Models tab, a ``model_id``), and record the digests of its files as a run tag
        and a tag of the logged model; returns its ``runs:/`` URI (which MLflow resolves to the logged model).

        Done through the client, like ``mlflow.pyfunc.log_model(name=...)`` without its thread-local active run:
        the folder is saved and its digests taken here, so the files uploaded are exactly the ones recorded."""
        from mlflow.entities import LoggedModelOutput

        with tempfile.TemporaryDirectory() as scratch:
            local_path = Path(scratch) / MODEL_ARTIFACT_PATH
            digests = save_from_code(kind, local_path, artifacts, signature, input_example, _serving_requirements())
            record = digests_text(digests)
            # In the tracking database before the files reach the artifact store: loading checks the files
            # against this record, so a file swapped in the store at any later time is refused.
            self.client.set_tag(run_id, MODEL_DIGESTS_TAG, record)
            logged = self.client.create_logged_model(
                self.client.get_run(run_id).info.experiment_id, name=MODEL_ARTIFACT_PATH, source_run_id=run_id,
                tags={MODEL_DIGESTS_TAG: record}, model_type=kind.name,
            )
            try:
                self.client.log_model_artifacts(logged.model_id, str(local_path))
            except BaseException:
                self.client.finalize_logged_model(logged.model_id, "FAILED")
                raise
            self.client.finalize_logged_model(logged.model_id, "READY")
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"

    def download_model_artifacts(self, model_uri: str, destination_dir: Path) -> Path:
        """The files of a logged or registered model (``models:/name/3``), copied to ``destination_dir`` and
        checked against the digests recorded when it was logged (when there are some)."""
        from seqflow.core.model_fetching import fetch_checked

        return fetch_checked(self, model_uri, Path(destination_dir), purpose="download").folder

    def model_server_command(self, model_uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
        """``mlflow models serve`` for ``model_uri`` in this environment, and the environment it needs."""
        interpreter_bin = str(Path(sys.executable).parent)
        environment = {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.settings.connection_uri(),
            "MLFLOW_REGISTRY_URI": self.settings.connection_uri(),
            **self.settings.credential_environment(),
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

    def load_pyfunc(
        self, model_uri: str, kind: PyfuncKind, *, others: tuple[PyfuncKind, ...] = (), needed_by: str | None = None
    ):  # noqa: ANN201 - mlflow PyFuncModel
        """The ``kind`` model at ``model_uri``, its files checked and its wrapper built from installed code; see
        :func:`seqflow.core.model_fetching.load_pyfunc`."""
        from seqflow.core.model_fetching import load_pyfunc

        return load_pyfunc(self, model_uri, kind, others=others, needed_by=needed_by)

    def prepare_served_model(self, model_uri: str, kind: PyfuncKind, destination_dir: Path) -> Path:
        """A checked local copy of the ``kind`` model at ``model_uri`` for ``mlflow models serve``; see
        :func:`seqflow.core.model_fetching.prepare_served_model`."""
        from seqflow.core.model_fetching import prepare_served_model

        return prepare_served_model(self, model_uri, kind, Path(destination_dir), _serving_requirements())

    def _model_location(self, model_uri: str) -> str:
        """Where the files behind a ``models:/`` or ``runs:/`` URI are stored, or the URI itself."""
        from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        try:
            with _fluent_store(self.settings.connection_uri()):
                if model_uri.startswith("models:/"):
                    return ModelsArtifactRepository.get_underlying_uri(model_uri)
                if model_uri.startswith("runs:/"):
                    return RunsArtifactRepository.get_underlying_uri(model_uri)
        except Exception:  # noqa: BLE001 - the location only adds detail to an error already being raised
            pass
        return model_uri

    def download_serving_model(self, model_uri: str, destination_dir: Path) -> Path:
        """The ``.keras`` serving model inside a logged or registered seqflow model, downloaded locally and
        checked against its recorded digests.

        For warm starts: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``runs:/RUN_ID/model``.
        """
        destination_dir = Path(destination_dir)
        destination_dir.mkdir(parents=True, exist_ok=True)
        from seqflow.core.model_fetching import fetch_checked

        local_dir = fetch_checked(self, model_uri, destination_dir, purpose="download").folder
        keras_files = sorted(local_dir.rglob("*.keras"))
        if len(keras_files) != 1:
            raise TrackingError(
                f"model {model_uri!r} is not a seqflow serving model: expected one .keras file, found {len(keras_files)}"
            )
        return keras_files[0]
