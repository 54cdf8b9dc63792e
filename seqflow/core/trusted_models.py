"""seqflow's pyfunc models on disk: logged as MLflow "models from code", loaded without running stored code.

MLflow's default pyfunc format pickles the ``PythonModel`` (``python_model.pkl``) and unpickles it at load: whoever
can write to the registry's artifact store can run code on every host that loads the model. seqflow therefore

- logs each model "from code" (``mlflow.pyfunc.save_model(python_model="<file>.py")``): the stored folder
  holds data only (``MLmodel``, the ``.keras`` file(s), the vocabulary, the environment files) plus a copy of a
  two-line seqflow file that names the wrapper class;
- records the SHA-256 of every file of the folder in the tracking database when it is logged (a run tag) and
  registered (a version tag): the tracking database is a separate permission from the artifact store;
- loads a model by checking every file against that record first (a refusal names the file), then building
  the wrapper from seqflow's *installed* code with the artifact paths from ``MLmodel``: neither the stored
  code file nor a pickle is ever executed, and Keras reads its files in safe mode.

Versions registered by earlier releases (pickled form, no digests) are recognised by their artifacts and
signature and built the same way, from installed code, with a warning: their ``python_model.pkl`` is never
unpickled, but their files cannot be checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from seqflow.core.errors import SeqflowError

logger = logging.getLogger(__name__)

# Run tag (set when a model is logged) and model-version tag (set when it is registered): JSON object
# {relative file path: sha256 hex} of every file of the logged model folder.
MODEL_DIGESTS_TAG = "seqflow.model_digests"
# Key in the MLmodel file's ``metadata`` naming the seqflow pyfunc kind (see PyfuncKind.name).
KIND_METADATA_KEY = "seqflow_pyfunc"
# Registered-model tag values may be at most 5000 characters on some stores (PostgreSQL VARCHAR(5000)).
MAX_DIGESTS_CHARS = 5000
MLMODEL_FILE = "MLmodel"
PICKLED_MODEL_FILE = "python_model.pkl"
REGISTERED_MODEL_META_FILE = "registered_model_meta"
_READ_CHUNK_BYTES = 1 << 20


class ModelFilesChanged(SeqflowError):
    """A logged model's files differ from the digests recorded in the tracking database."""


class ModelKindMismatch(SeqflowError):
    """A model is not the kind of seqflow model a command needs (a character model given to predict, ...)."""


@dataclass(frozen=True)
class PyfuncKind:
    """One kind of seqflow pyfunc, declared by its pipeline: how it is logged and how it is recognised."""

    name: str  # written into MLmodel's metadata, e.g. "review-sentiment"
    description: str  # "a review sentiment model"
    model_class: type  # the mlflow PythonModel subclass (no constructor arguments)
    code_path: Path  # the models-from-code file: builds model_class() and hands it to mlflow.models.set_model
    # Artifact keys and signature input columns: how a version logged by an earlier release (pickled) is recognised.
    artifact_keys: frozenset[str] = field(default_factory=frozenset)
    input_columns: tuple[str, ...] = ()
    used_by: str = ""  # the command that uses it, for messages: "`seqflow predict`"

    def summary(self, with_use: bool = True) -> str:
        used = f", used by {self.used_by}" if self.used_by and with_use else ""
        return f"{self.description} (input columns: {', '.join(self.input_columns)}{used})"


# --- digests --------------------------------------------------------------------------------------------


def file_digests(folder: Path) -> dict[str, str]:
    """``{path relative to folder (posix): sha256 hex}`` of every file under ``folder``, sorted by path."""
    folder = Path(folder)
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(_READ_CHUNK_BYTES), b""):
                    digest.update(chunk)
            digests[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return digests


def digests_text(digests: Mapping[str, str]) -> str:
    """The compact JSON kept in MODEL_DIGESTS_TAG; refuses a record too long for a tag (never truncated)."""
    text = json.dumps(dict(sorted(digests.items())), separators=(",", ":"))
    if len(text) > MAX_DIGESTS_CHARS:
        raise SeqflowError(
            f"the model folder has {len(digests)} files, too many to record their digests in one tag "
            f"({len(text)} > {MAX_DIGESTS_CHARS} characters)"
        )
    return text


def parse_digests(text: str, where: str) -> dict[str, str]:
    """The record of MODEL_DIGESTS_TAG; a malformed record is a refusal (it is the only trust anchor)."""
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not record or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in record.items()
    ):
        raise ModelFilesChanged(
            f"the {MODEL_DIGESTS_TAG!r} tag of {where} is not a JSON object of file digests (edited by hand?), so "
            "its files cannot be checked"
        )
    return record


def verify_files(folder: Path, recorded: Mapping[str, str], what: str) -> None:
    """:class:`ModelFilesChanged` naming the first file of ``folder`` that is missing, extra or different from
    ``recorded``; ``what`` says whose record it is (e.g. "when version 3 was registered")."""
    actual = file_digests(folder)
    for relative, digest in sorted(recorded.items()):
        if relative not in actual:
            raise ModelFilesChanged(f"its file {relative!r} is missing (it was there {what})")
        if actual[relative] != digest:
            raise ModelFilesChanged(
                f"its file {relative!r} does not match the SHA-256 recorded {what} (sha256 {digest[:12]}... "
                f"recorded, {actual[relative][:12]}... found): the files were changed after registration"
            )
    # MLflow writes registered_model_meta (the name and version asked for) into a models:/ download itself.
    extra = sorted(set(actual) - set(recorded) - {REGISTERED_MODEL_META_FILE})
    if extra:
        raise ModelFilesChanged(f"it has file(s) that were not there {what}: {', '.join(map(repr, extra[:5]))}")


# --- logging --------------------------------------------------------------------------------------------


def save_from_code(
    kind: PyfuncKind, destination: Path, artifacts: Mapping[str, str], signature: Any, input_example: Any,
    pip_requirements: list[str],
) -> dict[str, str]:
    """Save ``kind`` as a models-from-code pyfunc folder at ``destination``; returns its file digests."""
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(destination),
        python_model=str(kind.code_path),
        artifacts=dict(artifacts),
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        metadata={KIND_METADATA_KEY: kind.name},
    )
    return file_digests(destination)


# --- loading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFolder:
    """A downloaded model folder read without running anything: its MLmodel as data."""

    folder: Path
    mlmodel: dict[str, Any]

    @classmethod
    def read(cls, folder: Path) -> "ModelFolder":
        import yaml

        path = Path(folder) / MLMODEL_FILE
        try:
            mlmodel = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise SeqflowError(f"its {MLMODEL_FILE} cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        if not isinstance(mlmodel, dict):
            raise SeqflowError(f"its {MLMODEL_FILE} is not an MLflow model description")
        return cls(Path(folder), mlmodel)

    @property
    def pyfunc_flavor(self) -> dict[str, Any]:
        flavor = (self.mlmodel.get("flavors") or {}).get("python_function")
        return flavor if isinstance(flavor, dict) else {}

    @property
    def is_pickled(self) -> bool:
        """Logged in MLflow's pickled form (how releases before models-from-code logged seqflow models)."""
        return bool(self.pyfunc_flavor.get("python_model"))

    def artifact_paths(self) -> dict[str, str]:
        """``{artifact key: local path}``; a path that leaves the folder is refused (only data is read)."""
        paths = {}
        root = self.folder.resolve()
        for key, info in (self.pyfunc_flavor.get("artifacts") or {}).items():
            relative = info.get("path") if isinstance(info, dict) else None
            resolved = (root / str(relative)).resolve() if relative else None
            if resolved is None or not resolved.is_relative_to(root):
                raise SeqflowError(f"its {MLMODEL_FILE} gives artifact {key!r} a path outside the model folder: {relative!r}")
            paths[str(key)] = str(resolved)
        return paths

    def input_columns(self) -> list[str]:
        signature = self.mlmodel.get("signature") or {}
        try:
            return [str(column.get("name")) for column in json.loads(signature.get("inputs") or "[]")]
        except (ValueError, AttributeError, TypeError):
            return []

    def kind_name(self) -> str | None:
        metadata = self.mlmodel.get("metadata")
        return metadata.get(KIND_METADATA_KEY) if isinstance(metadata, dict) else None

    def describe(self, known: tuple[PyfuncKind, ...]) -> str:
        """What the model is, in words: a known seqflow kind, or its flavors and inputs."""
        found = self.matching_kind(known)
        if found is not None:
            return found.summary()
        if self.kind_name():
            return f"a seqflow {self.kind_name()!r} model"
        flavors = ", ".join(sorted(self.mlmodel.get("flavors") or {})) or "no flavor"
        columns = self.input_columns()
        inputs = f"input columns: {', '.join(columns)}" if columns else "no named input columns"
        return f"not a seqflow model ({flavors}; {inputs})"

    def matching_kind(self, kinds: tuple[PyfuncKind, ...]) -> PyfuncKind | None:
        """The kind recorded in MLmodel's metadata, or (earlier releases) the kind whose artifacts and input
        columns these are."""
        name = self.kind_name()
        if name is not None:
            return next((kind for kind in kinds if kind.name == name), None)
        if not self.is_pickled or self.pyfunc_flavor.get("loader_module") != "mlflow.pyfunc.model":
            return None
        keys, columns = set(self.pyfunc_flavor.get("artifacts") or {}), self.input_columns()
        return next(
            (kind for kind in kinds if keys == set(kind.artifact_keys) and columns == list(kind.input_columns)), None
        )


class _InstalledCodeModel:
    """The ``model_impl`` of an ``mlflow.pyfunc.PyFuncModel`` around a PythonModel built from installed code."""

    def __init__(self, python_model: Any, context: Any) -> None:
        self.python_model, self.context = python_model, context

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.python_model.predict(self.context, model_input, params=params)


def build_pyfunc(model: ModelFolder, kind: PyfuncKind) -> Any:
    """An ``mlflow.pyfunc.PyFuncModel`` (signature enforced on predict, as MLflow's loader does) whose wrapper is
    ``kind.model_class`` from installed code, reading the folder's artifacts as data."""
    import mlflow.pyfunc
    from mlflow.models import Model
    from mlflow.pyfunc.model import PythonModelContext

    meta = Model.from_dict(model.mlmodel)
    python_model = kind.model_class()
    context = PythonModelContext(artifacts=model.artifact_paths(), model_config={})
    python_model.load_context(context)
    return mlflow.pyfunc.PyFuncModel(model_meta=meta, model_impl=_InstalledCodeModel(python_model, context))


def check_kind(model: ModelFolder, expected: PyfuncKind, others: tuple[PyfuncKind, ...], needed_by: str | None) -> None:
    """:class:`ModelKindMismatch` saying what the model is and what is needed, unless it is ``expected``."""
    if model.matching_kind((expected,)) is expected:
        return
    wanted = expected.summary(with_use=False)
    needs = f"{needed_by} needs {wanted}" if needed_by else f"{wanted} is needed here"
    raise ModelKindMismatch(f"is {model.describe((expected, *others))}, but {needs}")


def warn_unverified(model_uri: str, model: ModelFolder, kind: PyfuncKind) -> None:
    """The warning for a model without recorded digests (registered by an earlier release, or a local folder)."""
    if model.is_pickled:
        logger.warning(
            "%s was logged by an earlier seqflow release in MLflow's pickled form (%s) and has no recorded file "
            "digests: seqflow builds it from its installed %s without unpickling, but cannot check that its files "
            "are the ones registered; retrain with `seqflow run` to replace it",
            model_uri, PICKLED_MODEL_FILE, kind.model_class.__name__,
        )
    else:
        logger.warning("%s has no recorded file digests, so its files cannot be checked", model_uri)


def prepare_for_server(model: ModelFolder, kind: PyfuncKind, destination: Path, pip_requirements: list[str]) -> Path:
    """A models-from-code copy of ``model`` at ``destination`` whose code file is seqflow's installed one, for
    ``mlflow models serve``: the server then runs no stored code and unpickles nothing."""
    from mlflow.models import Model

    meta = Model.from_dict(model.mlmodel)
    save_from_code(kind, destination, model.artifact_paths(), meta.signature, None, pip_requirements)
    return destination


def environment_without_pickles(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` for an MLflow child process that must refuse to unpickle any model."""
    return {**environment, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
