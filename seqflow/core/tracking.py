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
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from seqflow.core.connection import first_line, prepare_connection
from seqflow.core.errors import SeqflowError
from seqflow.core.processes import ProcessIdentity, current_process, is_gone
from seqflow.core.settings import TrackingSettings
from seqflow.core.stores import TRACKING_URI_SETTING, require_existing_store, require_writable
from seqflow.core.trusted_models import MODEL_DIGESTS_TAG, PyfuncKind, digests_text, save_from_code

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_PATH = "model"
# Runs or versions one search returns; more than this many stale runs at once would be closed over several starts.
SEARCH_MAX_RESULTS = 1000
# Tag that links every MLflow run to the Prefect flow run that created it (used to close runs of a failed flow).
FLOW_RUN_TAG = "seqflow.prefect_flow_run_id"
ROLE_TAG = "seqflow.role"
# Roles of the parent run of one execution: `seqflow run` and `seqflow charlm run` (and their reruns).
EXECUTION_ROLES = ("pipeline", "charlm-pipeline")
# Model version tag: the champion version this one replaced when it was promoted.
PREVIOUS_CHAMPION_TAG = "previous_champion"
# Lock file next to a SQLite store, held while a process opens (and maybe creates) the store.
SQLITE_LOCK_SUFFIX = ".open-lock"
# Registered-model tag: JSON list of every move of the champion alias (oldest first), so rollback knows the
# champion before the current one.
CHAMPION_HISTORY_TAG = "champion_history"
# Registered-model tag values are VARCHAR(5000) in MLflow's SQL schema (PostgreSQL enforces it): the history
# keeps as many of the latest moves as fit.
CHAMPION_HISTORY_MAX_CHARS = 5000
# MLflow accepts at most this many params per log_batch call.
PARAMS_PER_BATCH = 100
# Why a run of a dead process was closed by a later `seqflow run` (see Tracker.close_runs_of_dead_processes).
CLOSED_REASON_TAG = "seqflow.closed_reason"


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


def _store_error(tracking_uri: str, exc: BaseException) -> TrackingError:
    return TrackingError(f"cannot use MLflow tracking store {tracking_uri!r}: {type(exc).__name__}: {first_line(exc)[:300]}")


@contextlib.contextmanager
def _sqlite_creation_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock next to a SQLite store while it is opened; nothing for other stores.

    MLflow creates a new SQLite store by running its schema migrations, unguarded: two processes opening the
    same new file at once fail with "table ... already exists" or a half-migrated schema. The lock file stays
    behind (empty), like SQLite's own journal files.
    """
    if not tracking_uri.startswith("sqlite:"):
        yield
        return
    import fcntl

    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + SQLITE_LOCK_SUFFIX)
    # A read-only folder fails here first: say which folder, and what moves the store.
    require_writable([(lock_path.absolute().parent, TRACKING_URI_SETTING)])
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RegisteredVersion:
    architecture: str
    version: str
    run_id: str
    test_accuracy: float
    # The tag the champion is chosen by (``score_tag`` of register_versions); test_accuracy unless told.
    score: float = float("nan")


class Tracker:
    """An MLflow tracking store plus registry, as configured by ``mlflow.env``."""

    def __init__(self, settings: TrackingSettings, *, existing: bool = False) -> None:
        """``existing``: open a store that must already exist (see :func:`require_existing_store`), without the
        creation lock (so a read-only store opens) and without creating the experiment (``experiment_id`` is
        None when it has none yet), for commands that read or only change the registry."""
        from mlflow import MlflowClient

        self.settings = settings
        if existing:
            require_existing_store(settings.tracking_uri)
        connection_uri = prepare_connection(settings)  # never shown: it may hold a database password
        try:
            # The client creates (and on a new database migrates) the store; two processes starting on the same
            # new SQLite file would run the migrations at once and break each other, so they take turns.
            with contextlib.nullcontext() if existing else _sqlite_creation_lock(settings.tracking_uri):
                self.client = MlflowClient(tracking_uri=connection_uri, registry_uri=connection_uri)
                self.experiment_id = self._existing_experiment() if existing else self._ensure_experiment()
        except SeqflowError:
            raise
        except Exception as exc:  # noqa: BLE001 - any store failure means "cannot track", said plainly
            raise _store_error(settings.tracking_uri, exc) from None

    # --- runs --------------------------------------------------------------------------------------------

    def _existing_experiment(self) -> str | None:
        experiment = self.client.get_experiment_by_name(self.settings.experiment_name)
        return None if experiment is None else experiment.experiment_id

    def _ensure_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        name = self.settings.experiment_name
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name, artifact_location=self.settings.artifact_location or None)
            except MlflowException:
                # Another process created it between our lookup and create (a tracking server has no lock
                # we could take); use theirs. Anything else still fails below, with the store's message.
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

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
        _remember_run(run.info.run_id, self.settings.connection_uri())
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

    @contextlib.contextmanager
    def closing_on_failure(self, run_id: str, *, finish: bool = False, withdraw_versions: bool = False) -> Iterator[None]:
        """Run the block for ``run_id``; if it raises, end the run FAILED (KILLED for an interrupt, see
        :func:`ended_status`) and re-raise. ``finish``: end it FINISHED when the block succeeds.

        ``withdraw_versions`` (for an execution's parent run): first delete the versions registered with this
        run as their ``parent_run_id`` and give ``champion`` back to the version it replaced, so a failed
        execution leaves no version or alias behind. Withdrawn before the run is ended: a process killed in
        between leaves the run RUNNING, and the next execution withdraws the versions of its dead parent.

        A failure of this cleanup is logged, never raised in place of the error that caused it (often the same
        unreachable store); a run it could not end stays on the process's list for the CLI's last resort.
        """
        try:
            yield
            if finish:
                self.end_run(run_id, "FINISHED")
        except BaseException as exc:
            status = ended_status(exc)
            if withdraw_versions:
                try:
                    withdrawn = self.withdraw_versions_of_executions([run_id])
                except Exception as cleanup_exc:  # noqa: BLE001 - see the docstring
                    logger.error("could not withdraw the versions of failed execution %s: %s", run_id, cleanup_exc)
                else:
                    if withdrawn:
                        logger.warning(
                            "deleted version(s) %s of %r: the execution that registered them ended %s",
                            ", ".join(withdrawn), self.settings.registered_model_name, status,
                        )
            try:
                self.end_run(run_id, status)
            except Exception as cleanup_exc:  # noqa: BLE001 - see the docstring
                logger.error("could not end MLflow run %s as %s: %s", run_id, status, cleanup_exc)
            raise

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def run_state(self, run_id: str) -> tuple[str, str] | None:
        """``(status, lifecycle stage)`` of a run, or None when the store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            info = self.client.get_run(run_id).info
        except MlflowException:
            return None
        return info.status, info.lifecycle_stage

    def read_text(self, run_id: str, artifact_file: str) -> str | None:
        """A text artifact of a run, or None when the run has no such artifact."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as scratch:
            try:
                local_path = self.client.download_artifacts(run_id, artifact_file, scratch)
            except (MlflowException, OSError):
                return None
            return Path(local_path).read_text(encoding="utf-8")

    def latest_pipeline_run(self, status: str = "FINISHED", role: str = "pipeline") -> str | None:
        """The most recently started parent run (one per execution) with ``status``, or None; ``role``:
        ``pipeline`` (seqflow run) or ``charlm-pipeline`` (seqflow charlm run)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = '{role}' and attributes.status = '{status}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def close_open_runs(self, flow_run_id: str, status: str = "FAILED") -> list[str]:
        """End every RUNNING run created by the Prefect flow run ``flow_run_id``; returns their ids.

        Versions registered under one of them (as ``parent_run_id``) are withdrawn first: the flow failed
        between registering and finishing its parent run, so no finished execution stands behind them.
        """
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
        )
        withdrawn = self.withdraw_versions_of_executions(run.info.run_id for run in runs)
        if withdrawn:
            logger.warning(
                "deleted version(s) %s of %r: registered by a flow run that failed before it finished",
                ", ".join(withdrawn), self.settings.registered_model_name,
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
        from seqflow.core.processes import HOST_TAG, current_host

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
        import pandas as pd
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        from seqflow.sentiment.serving import KERAS_ARTIFACT, REVIEW_SENTIMENT, TEXT_COLUMN

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
            outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label")]),
        )
        return self.log_pyfunc_model(
            run_id,
            REVIEW_SENTIMENT,
            {KERAS_ARTIFACT: str(keras_model_path)},
            signature,
            pd.DataFrame({TEXT_COLUMN: example_texts}),
        )

    def log_pyfunc_model(self, run_id: str, kind: PyfuncKind, artifacts: dict[str, str], signature, input_example) -> str:  # noqa: ANN001
        """Log ``kind`` as a models-from-code pyfunc with its ``artifacts`` (files) to the run, and record the
        digests of its files as a run tag; returns its ``runs:/`` URI."""
        with tempfile.TemporaryDirectory() as scratch:
            local_path = Path(scratch) / MODEL_ARTIFACT_PATH
            # save_model + log_artifacts instead of log_model: no thread-local active run is needed.
            digests = save_from_code(kind, local_path, artifacts, signature, input_example, _serving_requirements())
            # In the tracking database before the files reach the artifact store: loading checks the files
            # against this record, so a file swapped in the store at any later time is refused.
            self.client.set_tag(run_id, MODEL_DIGESTS_TAG, digests_text(digests))
            self.client.log_artifacts(run_id, str(local_path), MODEL_ARTIFACT_PATH)
        return f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"

    def download_model_artifacts(self, model_uri: str, destination_dir: Path) -> Path:
        """The files of a logged or registered model (``models:/name/3``), copied to ``destination_dir`` and
        checked against the digests recorded when it was logged (when there are some)."""
        from seqflow.core.model_fetching import fetch_checked

        return fetch_checked(self, model_uri, Path(destination_dir), purpose="download").folder

    def register_versions(
        self, candidates: Iterable[tuple[str, str, str, dict[str, str]]], score_tag: str = "test_accuracy"
    ) -> list[RegisteredVersion]:
        """Register ``(architecture, run_id, model_uri, tags)`` as versions, all or none; each version's
        ``score`` is its ``score_tag`` tag.

        If any registration fails, the versions already created by this call are deleted again.
        """
        import mlflow

        name = self.settings.registered_model_name
        created: list[RegisteredVersion] = []
        try:
            for architecture, run_id, model_uri, tags in candidates:
                tags = {**tags, **self._digest_tags(run_id, model_uri)}
                with _fluent_store(self.settings.connection_uri()):
                    version = mlflow.register_model(model_uri, name, tags=tags)
                created.append(
                    RegisteredVersion(
                        architecture,
                        str(version.version),
                        run_id,
                        float(tags.get("test_accuracy", "nan")),
                        score=float(tags.get(score_tag, "nan")),
                    )
                )
        except BaseException as exc:
            for registered in created:
                self.client.delete_model_version(name, registered.version)
            if isinstance(exc, Exception):
                raise TrackingError(f"registering model versions of {name!r} failed, none kept: {exc}") from exc
            raise
        return created

    def _digest_tags(self, run_id: str, model_uri: str) -> dict[str, str]:
        """The run's record of its model's file digests, to be kept on the version registered from it."""
        if model_uri.rstrip("/") != f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}":
            return {}
        recorded = self.run_tags(run_id).get(MODEL_DIGESTS_TAG)
        return {MODEL_DIGESTS_TAG: recorded} if recorded else {}

    def delete_versions(self, versions: Iterable[RegisteredVersion]) -> None:
        """Delete ``versions``; if ``champion`` points at one of them, move it back to the version it replaced.

        Deleting a version also deletes its aliases: without this, a failure after the alias moved (while the
        promotion is still being recorded) would leave the model with no champion at all.
        """
        doomed = [str(registered.version) for registered in versions]
        champion = self.champion()
        previous = None
        if champion is not None and str(champion.version) in doomed:
            candidate = (champion.tags or {}).get(PREVIOUS_CHAMPION_TAG)
            if candidate and candidate not in doomed and self.version_exists(candidate):
                previous = candidate
                logger.warning("champion alias moved back to v%s: the version that replaced it is withdrawn", previous)
        self.withdraw_versions(doomed, previous)

    def version_exists(self, version: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_model_version(self.settings.registered_model_name, version)
        except MlflowException:
            return False
        return True

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
        if previous is not None and str(previous.version) != str(version) and not audit.get(PREVIOUS_CHAMPION_TAG):
            # Lets delete_versions put the alias back if this execution fails after moving it.
            audit = {**audit, PREVIOUS_CHAMPION_TAG: str(previous.version)}
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

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of a run (its role, data digests, rerun_of, ...)."""
        return dict(self.client.get_run(run_id).data.tags)

    def run_data(self, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
        """``(params, metrics)`` of a run."""
        data = self.client.get_run(run_id).data
        return dict(data.params), dict(data.metrics)

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

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.settings.registered_model_name, version, key, str(value))

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


def _bounded_history(history: list[dict[str, str]]) -> str:
    """``history`` as JSON, dropping the oldest moves until it fits a registered-model tag."""
    kept = list(history)
    while True:
        text = json.dumps(kept, separators=(",", ":"))
        if len(text) <= CHAMPION_HISTORY_MAX_CHARS or not kept:
            return text
        kept.pop(0)
