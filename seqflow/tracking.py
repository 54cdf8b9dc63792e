"""The one module that talks to MLflow: runs, metrics, artifacts, logged models and the model registry.

Everything goes through an explicit :class:`Tracker` holding an ``MlflowClient`` and explicit run ids, never
MLflow's thread-local "active run", so tasks on any thread or worker log to the right run.

Dask workers (``seqflow run --runner dask``) write to the same store at once. On SQLite that is safe without
retries here: MLflow runs ``PRAGMA busy_timeout = 20000`` on every session, so a writer waits for the lock
instead of failing with "database is locked" (checked with 6 processes logging runs, params and metrics at once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from seqflow.errors import SeqflowError
from seqflow.settings import TrackingSettings

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_PATH = "model"
# Tag that links every MLflow run to the Prefect flow run that created it (used to close runs of a failed flow).
FLOW_RUN_TAG = "seqflow.prefect_flow_run_id"
ROLE_TAG = "seqflow.role"
# Registered-model tag: JSON list of every move of the champion alias (oldest first), so rollback knows the
# champion before the current one.
CHAMPION_HISTORY_TAG = "champion_history"
# Registered-model tag values are VARCHAR(5000) in MLflow's SQL schema (PostgreSQL enforces it): the history
# keeps as many of the latest moves as fit.
CHAMPION_HISTORY_MAX_CHARS = 5000
# MLflow accepts at most this many params per log_batch call.
PARAMS_PER_BATCH = 100


class TrackingError(SeqflowError):
    """The tracking store or registry refused an operation, or a registered model is unusable."""


def git_commit() -> str | None:
    """The checked-out commit of the working directory, if it is a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


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


_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextlib.contextmanager
def _fluent_store(uri: str) -> Iterator[None]:
    """Point MLflow's fluent helpers (register_model, pyfunc.load_model) at ``uri`` for one call only.

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI to the environment; left set, it would
    override the ``--env-file`` of any seqflow process started afterwards. Both are restored on exit.
    """
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    saved_environment = {name: os.environ.get(name) for name in _URI_VARIABLES}
    previous_uri = mlflow.get_tracking_uri() if is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_uri)
        mlflow.set_registry_uri(previous_uri or "")
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class RegisteredVersion:
    architecture: str
    version: str
    run_id: str
    test_accuracy: float


class Tracker:
    """An MLflow tracking store plus registry, as configured by ``mlflow.env``."""

    def __init__(self, settings: TrackingSettings) -> None:
        from mlflow import MlflowClient

        self.settings = settings
        self.client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
        self.experiment_id = self._ensure_experiment()

    # --- runs --------------------------------------------------------------------------------------------

    def _ensure_experiment(self) -> str:
        try:
            experiment = self.client.get_experiment_by_name(self.settings.experiment_name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                return experiment.experiment_id
            return self.client.create_experiment(
                self.settings.experiment_name, artifact_location=self.settings.artifact_location or None
            )
        except Exception as exc:  # noqa: BLE001 - any store failure means "cannot track", said plainly
            raise TrackingError(
                f"cannot use MLflow tracking store {self.settings.tracking_uri!r}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None

    def start_run(self, run_name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
        all_tags = {key: str(value) for key, value in tags.items() if value is not None}
        commit = git_commit()
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items() if value == value]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def epoch_logger(self, run_id: str):  # noqa: ANN201 - an EpochCallback
        """A callback that logs Keras' epoch metrics with ``step=epoch`` as training goes."""

        def log_epoch(epoch: int, logs: dict[str, float]) -> None:
            self.log_metrics(run_id, logs, step=epoch)

        return log_epoch

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def close_open_runs(self, flow_run_id: str, status: str = "FAILED") -> list[str]:
        """End every RUNNING run created by the Prefect flow run ``flow_run_id``; returns their ids."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
        )
        for run in runs:
            self.client.set_terminated(run.info.run_id, status=status)
        return [run.info.run_id for run in runs]

    # --- models ------------------------------------------------------------------------------------------

    def log_serving_model(self, run_id: str, keras_model_path: Path, example_texts: list[str]) -> str:
        """Log the raw-text pyfunc (wrapping ``keras_model_path``) to the run; returns its ``runs:/`` URI."""
        import mlflow.pyfunc
        import pandas as pd
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        from seqflow.serving import KERAS_ARTIFACT, TEXT_COLUMN, ReviewSentimentModel

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
            outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label")]),
        )
        with tempfile.TemporaryDirectory() as scratch:
            local_path = os.path.join(scratch, MODEL_ARTIFACT_PATH)
            # save_model + log_artifacts instead of log_model: no thread-local active run is needed.
            mlflow.pyfunc.save_model(
                local_path,
                python_model=ReviewSentimentModel(),
                artifacts={KERAS_ARTIFACT: str(keras_model_path)},
                signature=signature,
                input_example=pd.DataFrame({TEXT_COLUMN: example_texts}),
                pip_requirements=_serving_requirements(),
            )
            self.client.log_artifacts(run_id, local_path, MODEL_ARTIFACT_PATH)
        return f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"

    def register_versions(self, candidates: Iterable[tuple[str, str, str, dict[str, str]]]) -> list[RegisteredVersion]:
        """Register ``(architecture, run_id, model_uri, tags)`` as versions, all or none.

        If any registration fails, the versions already created by this call are deleted again.
        """
        import mlflow

        name = self.settings.registered_model_name
        created: list[RegisteredVersion] = []
        try:
            for architecture, run_id, model_uri, tags in candidates:
                with _fluent_store(self.settings.tracking_uri):
                    version = mlflow.register_model(model_uri, name, tags=tags)
                created.append(
                    RegisteredVersion(architecture, str(version.version), run_id, float(tags.get("test_accuracy", "nan")))
                )
        except BaseException as exc:
            for registered in created:
                self.client.delete_model_version(name, registered.version)
            if isinstance(exc, Exception):
                raise TrackingError(f"registering model versions of {name!r} failed, none kept: {exc}") from exc
            raise
        return created

    def delete_versions(self, versions: Iterable[RegisteredVersion]) -> None:
        for registered in versions:
            self.client.delete_model_version(self.settings.registered_model_name, registered.version)

    def champion(self):  # noqa: ANN201 - mlflow ModelVersion or None
        """The version behind the ``champion`` alias, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.settings.registered_model_name, CHAMPION_ALIAS)
        except MlflowException:
            return None

    def model_version(self, version: str):  # noqa: ANN201 - mlflow ModelVersion
        """Version ``version`` of the registered model; a TrackingError naming the versions there are if absent."""
        from mlflow.exceptions import MlflowException

        name = self.settings.registered_model_name
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException:
            try:
                known = sorted(int(found.version) for found in self.client.search_model_versions(f"name='{name}'"))
            except MlflowException:
                known = []
            raise TrackingError(
                f"registered model {name!r} has no version {version!r} in {self.settings.tracking_uri} "
                f"(versions: {', '.join(map(str, known)) or 'none'})"
            ) from None

    def champion_history(self) -> list[dict[str, str]]:
        """Every recorded move of the champion alias, oldest first (empty before the first one)."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.settings.registered_model_name).tags
        except MlflowException:
            return []
        return json.loads(tags.get(CHAMPION_HISTORY_TAG) or "[]")

    def set_champion(self, version: str, audit: dict[str, str], action: str = "promote") -> None:
        """Point ``champion`` at ``version``, tag it with ``audit`` and append the move to the history.

        All or nothing: if any step fails, the alias, the version's tags and the history are put back as they
        were (the alias is removed again if there was no champion before).
        """
        name = self.settings.registered_model_name
        previous = self.champion()
        previous_tags = dict(self.client.get_model_version(name, version).tags)
        history = self.champion_history()
        entry = {"version": str(version), "action": action, **{key: str(value) for key, value in audit.items()}}
        alias_moved = False
        tagged: list[str] = []
        try:
            self.client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
            alias_moved = True
            for key, value in audit.items():
                self.client.set_model_version_tag(name, version, key, str(value))
                tagged.append(key)
            self.client.set_registered_model_tag(name, CHAMPION_HISTORY_TAG, _bounded_history([*history, entry]))
        except BaseException as exc:
            # Undo what was written, newest first; the history is the last write, so it never needs undoing.
            for key in reversed(tagged):
                if key in previous_tags:
                    self.client.set_model_version_tag(name, version, key, previous_tags[key])
                else:
                    self.client.delete_model_version_tag(name, version, key)
            if alias_moved and previous is not None:
                self.client.set_registered_model_alias(name, CHAMPION_ALIAS, previous.version)
            elif alias_moved:
                self.client.delete_registered_model_alias(name, CHAMPION_ALIAS)
            if isinstance(exc, Exception):
                raise TrackingError(f"moving {name}@{CHAMPION_ALIAS} to v{version} failed, nothing changed: {exc}") from exc
            raise

    def run_data(self, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
        """``(params, metrics)`` of a run."""
        data = self.client.get_run(run_id).data
        return dict(data.params), dict(data.metrics)

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

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.settings.registered_model_name, version, key, str(value))

    def load_pyfunc(self, model_uri: str):  # noqa: ANN201 - mlflow PyFuncModel
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        try:
            with _fluent_store(self.settings.tracking_uri):
                return mlflow.pyfunc.load_model(model_uri)
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot load model {model_uri!r}: {str(exc).splitlines()[0]}") from None


def _bounded_history(history: list[dict[str, str]]) -> str:
    """``history`` as JSON, dropping the oldest moves until it fits a registered-model tag."""
    kept = list(history)
    while True:
        text = json.dumps(kept, separators=(",", ":"))
        if len(text) <= CHAMPION_HISTORY_MAX_CHARS or not kept:
            return text
        kept.pop(0)
