"""What one execution produced, stored with its parent MLflow run so a later ``seqflow rerun`` can rebuild it.

``pipeline_state.json`` holds the configuration and every task's output record (split files and digests,
tokenised arrays, contract reports, trained and evaluated models per architecture, the registration). Loading
it back rebuilds the records; ``seqflow rerun`` checks the files are still there with the same digests.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqflow.config import PipelineConfig, get_profile, with_overrides
from seqflow.contracts import ContractReport
from seqflow.datasets import SplitFiles
from seqflow.errors import SeqflowError
from seqflow.steps import EvaluatedModel, RegistrationOutcome, TrainedModel
from seqflow.tokenise import TokenisedData

STATE_ARTIFACT = "pipeline_state.json"


@dataclass(frozen=True)
class PipelineState:
    config: PipelineConfig
    split_files: SplitFiles
    tokenised: TokenisedData
    contract_reports: list[ContractReport]
    trained: list[TrainedModel]
    evaluated: list[EvaluatedModel]
    registration: RegistrationOutcome | None

    def trained_model(self, architecture: str) -> TrainedModel:
        return _by_architecture(self.trained, architecture, "trained")

    def evaluated_model(self, architecture: str) -> EvaluatedModel:
        return _by_architecture(self.evaluated, architecture, "evaluated")


def _by_architecture(models: list[Any], architecture: str, what: str) -> Any:
    for model in models:
        if model.architecture == architecture:
            return model
    known = [model.architecture for model in models]
    raise SeqflowError(f"the earlier execution {what} no {architecture!r} model; it {what}: {known}")


def state_to_json(state: PipelineState) -> str:
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


def config_from_flat(flat: dict[str, Any]) -> PipelineConfig:
    """The configuration an earlier execution ran with, from its flat ``section.field`` form."""
    overrides = {key: ("none" if value is None else value) for key, value in flat.items() if key != "profile"}
    return with_overrides(get_profile(str(flat.get("profile", "quick"))), overrides)


def state_from_json(text: str) -> PipelineState:
    payload = json.loads(text)
    hints = typing.get_type_hints(PipelineState)
    return PipelineState(
        config=config_from_flat(payload["config"]),
        **{name: _load(hints[name], payload.get(name)) for name in hints if name != "config"},
    )
