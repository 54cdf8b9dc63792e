"""The one module that talks to MLflow: runs, metrics, artifacts, logged models and the model registry.

Everything goes through an explicit :class:`Tracker` holding an ``MlflowClient`` and explicit run ids, never
MLflow's thread-local "active run", so tasks on any thread or worker log to the right run.

Dask workers (``seqflow run --runner dask``) write to the same store at once. On SQLite that is safe without
retries here: MLflow runs ``PRAGMA busy_timeout = 20000`` on every session, so a writer waits for the lock
instead of failing with "database is locked" (checked with 6 processes logging runs, params and metrics at once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from seqflow.errors import SeqflowError
from seqflow.processes import ProcessIdentity, current_process, is_gone
from seqflow.settings import TrackingSettings

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_PATH = "model"
# Runs or versions one search returns; more than this many stale runs at once would be closed over several starts.
SEARCH_MAX_RESULTS = 1000
# Tag that links every MLflow run to the Prefect flow run that created it (used to close runs of a failed flow).
FLOW_RUN_TAG = "seqflow.prefect_flow_run_id"
ROLE_TAG = "seqflow.role"
# MLflow accepts at most this many params per log_batch call.
PARAMS_PER_BATCH = 100
# Why a run of a dead process was closed by a later `seqflow run` (see Tracker.close_runs_of_dead_processes).
CLOSED_REASON_TAG = "seqflow.closed_reason"
# Set on a version when it becomes champion: the version the alias pointed at before, to put it back if the
# execution that moved it never finishes.
PREVIOUS_CHAMPION_TAG = "previous_champion"


class TrackingError(SeqflowError):
    """The tracking store or registry refused an operation, or a registered model is unusable."""


def ended_status(exc: BaseException) -> str:
    """MLflow status for a run cut short by ``exc``: KILLED for an interrupt or termination signal (anything
    that is not an ``Exception``: KeyboardInterrupt, SystemExit, Prefect's TerminationSignal), else FAILED."""
    return "FAILED" if isinstance(exc, Exception) else "KILLED"


# Runs this process opened and has not ended yet, {run_id: tracking URI}: what a signal handler must close.
_open_runs: dict[str, str] = {}
_open_runs_lock = threading.Lock()


def open_runs() -> dict[str, str]:
    """The runs this process opened and has not ended, as ``{run_id: tracking_uri}``."""
    with _open_runs_lock:
        return dict(_open_runs)


def end_open_runs(status: str = "KILLED") -> list[str]:
    """End every run this process opened and has not ended (used when it is interrupted); returns their ids.

    Never raises: it runs while the process is going down, and one unreachable store must not keep the other
    runs open.
    """
    ended: list[str] = []
    for run_id, tracking_uri in open_runs().items():
        from mlflow import MlflowClient

        try:
            MlflowClient(tracking_uri=tracking_uri).set_terminated(run_id, status=status)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next run
            logger.warning("could not end MLflow run %s as %s: %s", run_id, status, exc)
            continue
        _forget_run(run_id)
        ended.append(run_id)
    return ended


def _remember_run(run_id: str, tracking_uri: str) -> None:
    with _open_runs_lock:
        _open_runs[run_id] = tracking_uri


def _forget_run(run_id: str) -> None:
    with _open_runs_lock:
        _open_runs.pop(run_id, None)


@dataclass(frozen=True)
class ClosedRun:
    """A RUNNING run whose owner process was gone, ended as KILLED."""

    run_id: str
    run_name: str
    role: str | None
    owner: ProcessIdentity


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
        # The owner process, so that a later run can tell that this one died without closing it.
        all_tags.update(current_process().as_tags())
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        _remember_run(run.info.run_id, self.settings.tracking_uri)
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
        _forget_run(run_id)

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def close_open_runs(self, flow_run_id: str, status: str = "FAILED") -> list[str]:
        """End every RUNNING run created by the Prefect flow run ``flow_run_id``; returns their ids."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
        )
        for run in runs:
            self.end_run(run.info.run_id, status)
        return [run.info.run_id for run in runs]

    def close_runs_of_dead_processes(self) -> list[ClosedRun]:
        """End as KILLED every RUNNING run of this experiment whose owner process on this host is gone.

        A ``kill -9``, an out-of-memory kill or a power cut leaves runs RUNNING forever; the next ``seqflow run``
        calls this first. Runs of live processes (another ``seqflow run`` at work) and of other hosts (which
        cannot be checked from here) are left alone, as are runs without owner tags.
        """
        from seqflow.processes import HOST_TAG, current_host

        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{current_host()}'",
            max_results=SEARCH_MAX_RESULTS,
        )
        closed = []
        for run in runs:
            owner = ProcessIdentity.from_tags(run.data.tags)
            if owner is None or not is_gone(owner):
                continue
            self.client.set_tag(run.info.run_id, CLOSED_REASON_TAG, f"owner process {owner.describe()} is gone")
            self.client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(ClosedRun(run.info.run_id, run.info.run_name, run.data.tags.get(ROLE_TAG), owner))
        return closed

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

    def withdraw_versions(self, versions: Iterable[str], previous_champion: str | None) -> None:
        """Delete ``versions``; if that took the champion alias away, point it at ``previous_champion`` again
        (when that version still exists). Deleting a version deletes the aliases on it."""
        from mlflow.exceptions import MlflowException

        name = self.settings.registered_model_name
        for version in versions:
            self.client.delete_model_version(name, version)
        if previous_champion and self.champion() is None:
            try:
                self.client.set_registered_model_alias(name, CHAMPION_ALIAS, previous_champion)
            except MlflowException as exc:
                logger.warning("could not give %r back to version %s: %s", CHAMPION_ALIAS, previous_champion, exc)

    def withdraw_versions_of_executions(self, parent_run_ids: Iterable[str]) -> list[str]:
        """Delete the versions registered by pipeline executions that never finished (their parent run was
        closed as KILLED), and give the champion alias back to the version it had before; returns the versions.

        An execution registers its versions, then moves the alias, then closes its parent run: a process killed
        in between leaves versions (and maybe the alias) that no finished execution stands behind.
        """
        name = self.settings.registered_model_name
        withdrawn = []
        for parent_run_id in parent_run_ids:
            versions = self.client.search_model_versions(
                f"name = '{name}' and tags.parent_run_id = '{parent_run_id}'", max_results=SEARCH_MAX_RESULTS
            )
            if not versions:
                continue
            champion = self.champion()
            previous = None
            if champion is not None and any(version.version == champion.version for version in versions):
                previous = (champion.tags or {}).get(PREVIOUS_CHAMPION_TAG) or None
            self.withdraw_versions([str(version.version) for version in versions], previous)
            withdrawn.extend(str(version.version) for version in versions)
        return withdrawn

    def champion(self):  # noqa: ANN201 - mlflow ModelVersion or None
        """The version behind the ``champion`` alias, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.settings.registered_model_name, CHAMPION_ALIAS)
        except MlflowException:
            return None

    def set_champion(self, version: str, audit: dict[str, str]) -> None:
        name = self.settings.registered_model_name
        for key, value in audit.items():
            self.client.set_model_version_tag(name, version, key, value)
        self.client.set_registered_model_alias(name, CHAMPION_ALIAS, version)

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
