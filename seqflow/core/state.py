"""What one execution produced, stored with its parent MLflow run so a later rerun can rebuild it.

``pipeline_state.json`` holds the configuration (flat ``section.field`` form) and every task's output record.
This module is the machinery any pipeline's state uses: a frozen dataclass of records, written field by field
as plain JSON and read back into the annotated types. Each pipeline declares its state class and how its
configuration is rebuilt (:mod:`seqflow.sentiment.state`, :mod:`seqflow.charlm.state`); ``seqflow rerun``
checks the files are still there with the same digests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from seqflow.core.contracts import ContractReport
from seqflow.core.errors import SeqflowError
from seqflow.core.registry import RegistrationOutcome

STATE_ARTIFACT = "pipeline_state.json"


# The types a pipeline's state class gives the fields every execution state has (see ExecutionState).
ConfigT = TypeVar("ConfigT")
SplitFilesT = TypeVar("SplitFilesT")
TrainedT = TypeVar("TrainedT")
EvaluatedT = TypeVar("EvaluatedT")


@dataclass(frozen=True)
class ExecutionState(Generic[ConfigT, SplitFilesT, TrainedT, EvaluatedT]):
    """The records every pipeline's execution state holds: its configuration, split files, trained and evaluated
    models (one per architecture), contract reports and registration. A pipeline's state class names the types
    of the first four, ``ExecutionState[Config, SplitFiles, Trained, Evaluated]``, and adds its own fields (its
    prepared data); :func:`read_state` rebuilds each field as that type."""

    config: ConfigT
    split_files: SplitFilesT
    contract_reports: list[ContractReport]
    trained: list[TrainedT]
    evaluated: list[EvaluatedT]
    registration: RegistrationOutcome | None

    def trained_model(self, architecture: str) -> TrainedT:
        return _by_architecture(self.trained, architecture, "trained")

    def evaluated_model(self, architecture: str) -> EvaluatedT:
        return _by_architecture(self.evaluated, architecture, "evaluated")


def _by_architecture(models: list[Any], architecture: str, what: str) -> Any:
    for model in models:
        if model.architecture == architecture:
            return model
    known = [model.architecture for model in models]
    raise SeqflowError(f"the earlier execution {what} no {architecture!r} model; it {what}: {known}")


def state_to_json(state: Any) -> str:
    """A state dataclass (its ``config`` has ``to_flat_dict``) as the JSON of ``pipeline_state.json``."""
    payload = {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
    payload = {name: _plain(value) for name, value in payload.items()}
    payload["config"] = state.config.to_flat_dict()
    return json.dumps(payload, indent=2, default=str)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _load(annotation: Any, value: Any) -> Any:
    """Rebuild a value of the annotated type from its JSON form (dataclasses, lists, dicts, paths, options)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _load(next(arg for arg in args if arg is not type(None)), value)
    if dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        known = {field.name for field in dataclasses.fields(annotation)}
        return annotation(**{name: _load(hints[name], item) for name, item in value.items() if name in known})
    if origin is list:
        return [_load(args[0], item) for item in value]
    if origin is dict:
        return {key: _load(args[1], item) for key, item in value.items()}
    if annotation is Path:
        return Path(value)
    return value


def flat_overrides(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat ``section.field`` configuration as ``--set`` overrides (None as ``none``), its profile left out."""
    return {key: ("none" if value is None else value) for key, value in flat.items() if key != "profile"}


def read_state(state_type: type, resolve_config: Callable[[str, dict[str, Any]], Any], text: str) -> Any:
    """A ``state_type`` from the JSON :func:`state_to_json` wrote: the config resolved again by the pipeline's
    ``resolve_config(profile, overrides)`` from its profile (default ``quick``) and its flat ``section.field`` form
    as overrides, every other field rebuilt from its annotation."""
    payload = json.loads(text)
    flat = payload["config"]
    hints = _field_types(state_type)
    return state_type(
        config=resolve_config(str(flat.get("profile", "quick")), flat_overrides(flat)),
        **{name: _load(hints[name], payload.get(name)) for name in hints if name != "config"},
    )


def _field_types(state_type: type) -> dict[str, Any]:
    """The annotations of ``state_type``'s fields, the ones :class:`ExecutionState` declares with the types the
    pipeline's state class gives them (``list[TrainedT]`` as ``list[TrainedCharModel]``)."""
    bound: dict[Any, Any] = {}
    for base in getattr(state_type, "__orig_bases__", ()):
        if typing.get_origin(base) is ExecutionState:
            bound = dict(zip(ExecutionState.__parameters__, typing.get_args(base)))
    hints = typing.get_type_hints(state_type)
    for name, hint in hints.items():
        if isinstance(hint, TypeVar):
            hints[name] = bound[hint]
        elif getattr(hint, "__parameters__", ()):
            hints[name] = hint[tuple(bound[parameter] for parameter in hint.__parameters__)]
    return hints
