"""Whether a ``--model-uri`` names something that exists, asked before loading it.

Loading a URI that names nothing fails deep inside MLflow with errors that read like damage ("its files are
missing or damaged"); asking the registry, the run store or the file system first says which part does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from seqflow.core.errors import SeqflowError

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))/?$")
_RUN = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/.*)?$")


def _exists(call) -> bool:  # noqa: ANN001 - a no-argument callable asking MLflow for one entity
    from mlflow.exceptions import MlflowException

    try:
        call()
        return True
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def missing_model(client, model_uri: str, tracking_uri: str) -> str | None:  # noqa: ANN001 - an MlflowClient
    """A sentence saying which part of ``model_uri`` does not exist, or None when it exists (or is a kind of
    URI this does not know: MLflow's own loading reports those)."""
    registered = _REGISTERED.match(model_uri)
    if registered:
        name = registered["name"]
        if not _exists(lambda: client.get_registered_model(name)):
            return f"model {model_uri!r} does not exist: no registered model named {name!r} in {tracking_uri}"
        if registered["version"] is not None:
            version = registered["version"]
            # A word instead of a number is a stage (models:/NAME/Production): MLflow resolves those itself.
            if version.isdigit() and not _exists(lambda: client.get_model_version(name, version)):
                return f"model {model_uri!r} does not exist: registered model {name!r} has no version {version!r}"
        # (A missing alias is INVALID_PARAMETER_VALUE to MLflow's SQL store, so read the model's aliases instead.)
        elif registered["alias"] not in (client.get_registered_model(name).aliases or {}):
            return f"model {model_uri!r} does not exist: registered model {name!r} has no alias {registered['alias']!r}"
        return None
    run = _RUN.match(model_uri)
    if run:
        if not _exists(lambda: client.get_run(run["run_id"])):
            return f"model {model_uri!r} does not exist: no run {run['run_id']!r} in {tracking_uri}"
        return None
    parsed = urlparse(model_uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else model_uri)
        if not path.exists():
            return f"model {model_uri!r} does not exist: there is no folder {str(path)!r}"
    return None


def refuse_missing_model(client, model_uri: str | None, tracking_uri: str) -> None:  # noqa: ANN001 - an MlflowClient
    """A :class:`SeqflowError` when a ``--model-uri`` names nothing (rather than "files missing or damaged")."""
    problem = model_uri and missing_model(client, model_uri, tracking_uri)
    if problem:
        raise SeqflowError(f"{problem}; pass an existing --model-uri (`seqflow champion` shows the champion)")
