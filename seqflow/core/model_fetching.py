"""Fetching a logged or registered model from the store and checking it before anything reads it.

The record of a model's file digests lives in the tracking database (a version tag, else the run tag of the run
that logged it); the files come from the artifact store. Both are read here, the files downloaded once into a
local folder and checked against the record, and every later step reads that checked folder only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from seqflow.core.connection import first_line
from seqflow.core.errors import SeqflowError
from seqflow.core.settings import redact_credentials
from seqflow.core.trusted_models import (
    MODEL_DIGESTS_TAG,
    ModelFilesChanged,
    ModelFolder,
    ModelKindMismatch,
    PyfuncKind,
    build_pyfunc,
    check_kind,
    parse_digests,
    prepare_for_server,
    verify_files,
    warn_unverified,
)

if TYPE_CHECKING:
    from seqflow.core.tracking import Tracker, TrackingError


def load_pyfunc(
    tracker: "Tracker", model_uri: str, kind: PyfuncKind, *, others: tuple[PyfuncKind, ...] = (),
    needed_by: str | None = None,
):  # noqa: ANN201 - mlflow PyFuncModel
    """The ``kind`` model at ``model_uri``, its files checked and its wrapper built from installed code (no stored
    code or pickle runs; see :mod:`seqflow.core.trusted_models`).

    A model of another kind is refused saying what it is (``others``: kinds to recognise in that message) and
    what ``needed_by`` needs. Files changed since registration are refused naming the file. A registered model
    whose folder was deleted, or whose ``.keras`` file or ``MLmodel`` is damaged, fails deep inside MLflow, YAML
    or Keras with many different exception types; all mean "this model is unusable", said in one line.
    """
    with tempfile.TemporaryDirectory() as scratch:
        model = fetch_checked(tracker, model_uri, Path(scratch), kind, others=others, needed_by=needed_by)
        try:
            # Keras reads the whole file in load_context: the folder may go afterwards.
            return build_pyfunc(model, kind)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            raise load_error(tracker, model_uri, exc) from None


def prepare_served_model(
    tracker: "Tracker", model_uri: str, kind: PyfuncKind, destination_dir: Path, pip_requirements: list[str]
) -> Path:
    """A local, checked copy of the ``kind`` model at ``model_uri`` for ``mlflow models serve``, whose code file
    is seqflow's installed one (so the server unpickles nothing and runs no stored code)."""
    model = fetch_checked(tracker, model_uri, destination_dir / "downloaded", kind)
    try:
        return prepare_for_server(model, kind, destination_dir / "served", pip_requirements)
    except Exception as exc:  # noqa: BLE001 - an unusable model, said plainly
        raise load_error(tracker, model_uri, exc) from None


def fetch_checked(
    tracker: "Tracker", model_uri: str, destination_dir: Path, kind: PyfuncKind | None = None, *,
    others: tuple[PyfuncKind, ...] = (), needed_by: str | None = None, purpose: str = "load",
) -> ModelFolder:
    """Download ``model_uri``, check its files against the recorded digests, and (given ``kind``) check that it
    is a ``kind`` model; nothing of it is executed. A model without a record loads with a warning. ``purpose``:
    the verb of error messages ("cannot load model ...")."""
    import mlflow.artifacts

    from seqflow.core.tracking import MODEL_ARTIFACT_PATH, _fluent_store

    try:
        recorded, recorded_when = recorded_digests(tracker, model_uri, MODEL_ARTIFACT_PATH, purpose)
    except ModelFilesChanged as exc:
        raise load_error(tracker, model_uri, exc, purpose) from None
    try:
        with _fluent_store(tracker.settings.connection_uri()):
            local_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination_dir)))
        if recorded is not None:
            verify_files(local_dir, recorded, recorded_when)
        model = ModelFolder.read(local_dir)
        if kind is not None:
            check_kind(model, kind, others, needed_by)
    except ModelKindMismatch as exc:
        raise ModelKindMismatch(f"model {model_uri!r} {exc}") from None
    except Exception as exc:  # noqa: BLE001 - an unusable model, whatever the library's exception says
        raise load_error(tracker, model_uri, exc, purpose) from None
    if recorded is None and kind is not None:
        warn_unverified(model_uri, model, kind)
    return model


def recorded_digests(
    tracker: "Tracker", model_uri: str, model_path: str, purpose: str = "load"
) -> tuple[dict[str, str] | None, str]:
    """The file digests recorded for ``model_uri`` in the tracking database, and when they were recorded;
    ``(None, "")`` for a model without a record (registered by an earlier release, or not logged by a run).

    ``model_path``: where a seqflow run logs its model (``runs:/RUN_ID/<model_path>``).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = tracker.client
    run_id = None
    try:
        if model_uri.startswith("models:/"):
            name_and_version = get_model_name_and_version(client, model_uri)
            if len(name_and_version) != 2:  # models:/m-<id>: an MLflow 3 logged model, outside the registry
                return _logged_model_digests(client, model_uri[len("models:/"):].strip("/"))
            version = client.get_model_version(*name_and_version)
            recorded = (version.tags or {}).get(MODEL_DIGESTS_TAG)
            if recorded:
                where = f"version {version.version} of {version.name!r}"
                return parse_digests(recorded, where), f"when {where} was registered"
            # Registered from a seqflow logged model by other means (the MLflow UI): the logged model's record holds.
            source = (version.source or "").rstrip("/")
            if source.startswith("models:/m-"):
                return _logged_model_digests(client, source[len("models:/"):])
            # Registered from a seqflow run's model by other means (the MLflow UI): that run's record holds.
            if version.run_id and (version.source or "").rstrip("/") == f"runs:/{version.run_id}/{model_path}":
                run_id = version.run_id
        elif model_uri.startswith("runs:/"):
            candidate, _, path = model_uri[len("runs:/"):].partition("/")
            run_id = candidate if path.strip("/") == model_path else None
        if run_id is None:
            return None, ""
        recorded = dict(client.get_run(run_id).data.tags).get(MODEL_DIGESTS_TAG)
    except MlflowException as exc:
        raise _tracking_error(f"cannot {purpose} model {model_uri!r}: {first_line(exc)[:300]}") from None
    if not recorded:
        return None, ""
    return parse_digests(recorded, f"run {run_id}"), f"when run {run_id} logged it"


def _logged_model_digests(client, model_id: str) -> tuple[dict[str, str] | None, str]:  # noqa: ANN001 - MlflowClient
    """The digests recorded on an MLflow 3 logged model when seqflow logged it, or ``(None, "")``."""
    recorded = (client.get_logged_model(model_id).tags or {}).get(MODEL_DIGESTS_TAG)
    if not recorded:
        return None, ""
    return parse_digests(recorded, f"logged model {model_id}"), f"when logged model {model_id} was logged"


def load_error(tracker: "Tracker", model_uri: str, exc: BaseException, purpose: str = "load") -> "TrackingError":
    """The one-line error for a model that cannot be used: where its files are, why, and what to do."""
    reason = first_line(exc)
    if not isinstance(exc, SeqflowError):
        reason = f"{type(exc).__name__}: {reason[:300]}; its files are missing or damaged"
    location = redact_credentials(tracker._model_location(model_uri))  # a server URL may carry a password
    return _tracking_error(
        f"cannot {purpose} model {model_uri!r} (files at {location}): {reason}: register an "
        "intact model again with `seqflow run`, or pass --model-uri of another version"
    )


def _tracking_error(message: str) -> "TrackingError":
    from seqflow.core.tracking import TrackingError

    return TrackingError(message)
