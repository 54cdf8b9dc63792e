"""Where seqflow keeps files, checked before a command starts: a store that must exist, folders it must write.

Commands that only read (``predict``, ``champion``, ``generate``, ``serve``) and those that change a registry
without ever creating one (``promote``, ``rollback``) need an existing MLflow store: MLflow would otherwise create
and migrate a new, empty one (a 0-byte file included) and report its empty registry as "no champion", hiding a
wrong folder or a lost store. Commands that write need writable folders; in a read-only working directory they
would fail deep inside MLflow, SQLite or Keras instead of naming the folder and the setting that moves it.
"""

from __future__ import annotations

import os
from pathlib import Path

from seqflow.core.errors import ConfigError, SeqflowError
from seqflow.core.settings import TrackingSettings

# What moves each place seqflow writes to, as the error names it.
TRACKING_URI_SETTING = "MLFLOW_TRACKING_URI (in mlflow.env or the environment)"
ARTIFACTS_DIR_SETTING = "SEQFLOW_ARTIFACTS_DIR (or --set artifacts_dir=PATH)"
ARTIFACT_LOCATION_SETTING = "SEQFLOW_ARTIFACT_LOCATION (in mlflow.env or the environment)"


class StoreMissing(SeqflowError):
    """The MLflow store a command reads is not there, or is an empty file."""


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:`` tracking URI; None for other stores and in-memory databases."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def require_existing_store(tracking_uri: str) -> None:
    """:class:`StoreMissing` unless the SQLite store of ``tracking_uri`` is a non-empty file (other stores are
    servers or databases that report for themselves)."""
    path = sqlite_store_path(tracking_uri)
    if path is None:
        return
    shown = os.path.abspath(path)
    if not path.exists():
        raise StoreMissing(
            f"there is no MLflow store at {shown} (MLFLOW_TRACKING_URI={tracking_uri}), so nothing was trained with "
            f"it: run `seqflow run` (or `seqflow charlm run`) first, or set {TRACKING_URI_SETTING} to the store"
        )
    if path.is_dir():
        raise StoreMissing(f"the MLflow store {shown} is a folder, not a SQLite file: set {TRACKING_URI_SETTING} to the file")
    if path.stat().st_size == 0:
        raise StoreMissing(
            f"the MLflow store {shown} is an empty file: its runs and registered models are lost. Restore it from a "
            "backup, or delete it and run `seqflow run` to start a new store"
        )


def _nearest_existing(path: Path) -> Path:
    """``path`` or the closest folder above it that exists (where a missing folder would be created)."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def require_writable(places: list[tuple[Path, str]]) -> None:
    """:class:`ConfigError` naming the first of ``places`` (folder, setting that moves it) this process cannot
    write to (or create). ``os.access`` reports a read-only filesystem even for root."""
    for folder, setting in places:
        existing = _nearest_existing(Path(folder))
        if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
            continue
        why = "is read-only" if existing.is_dir() else "is not a folder"
        named = "" if existing == Path(folder).absolute() else f" (to create {Path(folder).absolute()})"
        raise ConfigError(
            f"cannot write to {existing}{named}: it {why}. Run seqflow in a writable folder, or move this with {setting}"
        )


def write_places(tracking_uri: str, artifact_location: str | None, artifacts_dir: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """The local folders a training command writes to, each with the setting that moves it."""
    places: list[tuple[Path, str]] = [(Path(artifacts_dir), ARTIFACTS_DIR_SETTING)]
    store = sqlite_store_path(tracking_uri)
    if store is not None:
        # SQLite writes a journal next to the database file.
        places.append((store.absolute().parent, TRACKING_URI_SETTING))
    if artifact_location and artifact_location.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        places.append((Path(url2pathname(urlparse(artifact_location).path)), ARTIFACT_LOCATION_SETTING))
    elif artifact_location and "://" not in artifact_location:
        places.append((Path(artifact_location), ARTIFACT_LOCATION_SETTING))
    return places


def require_writable_places(settings: TrackingSettings, artifacts_dir: str, store: bool = True) -> None:
    """Before a command that writes starts: one line naming the folder and the setting that moves it when one
    of its folders (``artifacts_dir``, and with ``store`` the SQLite store's folder and a local artifact root)
    is read-only, instead of tracebacks from MLflow, SQLite or Keras half-way through."""
    if store:
        require_writable(write_places(settings.tracking_uri, settings.artifact_location, artifacts_dir))
    else:
        require_writable([(Path(artifacts_dir), ARTIFACTS_DIR_SETTING)])
