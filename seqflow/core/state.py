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
from typing import Any, Callable

from seqflow.core.contracts import ContractReport
from seqflow.core.errors import SeqflowError
from seqflow.core.registry import RegistrationOutcome

STATE_ARTIFACT = "pipeline_state.json"


class ModelsByArchitecture:
    """The per-architecture look-ups of a state dataclass with ``trained`` and ``evaluated`` model lists (no fields
    of its own, so the state's JSON is only its dataclass fields)."""

    trained: list[Any]
    evaluated: list[Any]

    def trained_model(self, architecture: str) -> Any:
        return _by_architecture(self.trained, architecture, "trained")

    def evaluated_model(self, architecture: str) -> Any:
        return _by_architecture(self.evaluated, architecture, "evaluated")


@dataclass(frozen=True)
class ExecutionState(ModelsByArchitecture):
    """The records every pipeline's execution state holds besides its configuration, data and models: the
    contract reports and the registration. A pipeline's state class adds its own (typed) fields."""

    contract_reports: list[ContractReport]
    registration: RegistrationOutcome | None


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
    hints = typing.get_type_hints(state_type)
    return state_type(
        config=resolve_config(str(flat.get("profile", "quick")), flat_overrides(flat)),
        **{name: _load(hints[name], payload.get(name)) for name in hints if name != "config"},
    )
