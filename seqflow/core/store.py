"""The connection to one MLflow tracking store and registry, shared by the tracking concerns.

Everything goes through an explicit ``MlflowClient`` and explicit run ids, never MLflow's thread-local "active
run", so tasks on any thread or worker log to the right run. The concerns built on it: run lifecycle and
dead-owner recovery (:mod:`seqflow.core.runs`), logging (:mod:`seqflow.core.run_logging`), the model registry
(:mod:`seqflow.core.model_registry`) and logged models (:mod:`seqflow.core.models`).

Dask workers (``seqflow run --runner dask``) write to the same store at once. On SQLite that is safe without
retries here: MLflow runs ``PRAGMA busy_timeout = 20000`` on every session, so a writer waits for the lock
instead of failing with "database is locked" (checked with 6 processes logging runs, params and metrics at once).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from seqflow.core.connection import first_line, prepare_connection
from seqflow.core.errors import SeqflowError
from seqflow.core.settings import TrackingSettings
from seqflow.core.stores import TRACKING_URI_SETTING, require_existing_store, require_writable

# Lock file next to a SQLite store, held while a process opens (and maybe creates) the store.
SQLITE_LOCK_SUFFIX = ".open-lock"


class TrackingError(SeqflowError):
    """The tracking store or registry refused an operation, or a registered model is unusable."""


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


class TrackingStore:
    """An MLflow tracking store plus registry, as configured by ``mlflow.env``: the client, the settings and
    the experiment every run goes to. Each tracking concern is a subclass; :class:`~seqflow.core.tracking.Tracker`
    combines them."""

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
