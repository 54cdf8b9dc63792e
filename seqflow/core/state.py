"""What one execution produced, stored with its parent MLflow run so a later ``seqflow rerun`` can rebuild it.

``pipeline_state.json`` holds the configuration and every task's output record (split files and digests,
tokenised arrays, contract reports, trained and evaluated models per architecture, the registration). Loading
it back rebuilds the records; ``seqflow rerun`` checks the files are still there with the same digests.
A ``seqflow charlm run`` execution logs the same file with its own records (:class:`CharLMState`), for
``seqflow charlm rerun``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqflow.charlm.text import CharEncodedData, CharSplitFiles
from seqflow.charlm.steps import EvaluatedCharModel, TrainedCharModel
from seqflow.charlm.steps import _dataset_tags as char_dataset_tags
from seqflow.config import CharLMConfig, PipelineConfig, get_profile, resolve_charlm_config, with_overrides
from seqflow.core.contracts import ContractReport
from seqflow.sentiment.datasets import SplitFiles
from seqflow.core.errors import SeqflowError
from seqflow.sentiment.steps import EvaluatedModel, RegistrationOutcome, TrainedModel
from seqflow.sentiment.steps import _dataset_tags as sentiment_dataset_tags
from seqflow.sentiment.tokenise import TokenisedData

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

    def dataset_tags(self) -> dict[str, str]:
        """The data tags of the execution's runs (source and digests)."""
        return sentiment_dataset_tags(self.split_files, self.tokenised)


@dataclass(frozen=True)
class CharLMState:
    """What one ``seqflow charlm run`` execution produced (the same file name and layout as PipelineState)."""

    config: CharLMConfig
    split_files: CharSplitFiles
    encoded: CharEncodedData
    contract_reports: list[ContractReport]
    trained: list[TrainedCharModel]
    evaluated: list[EvaluatedCharModel]
    registration: RegistrationOutcome | None

    def trained_model(self, architecture: str) -> TrainedCharModel:
        return _by_architecture(self.trained, architecture, "trained")

    def evaluated_model(self, architecture: str) -> EvaluatedCharModel:
        return _by_architecture(self.evaluated, architecture, "evaluated")

    def dataset_tags(self) -> dict[str, str]:
        """The data tags of the execution's runs (source and digests)."""
        return char_dataset_tags(self.split_files, self.encoded)


def _by_architecture(models: list[Any], architecture: str, what: str) -> Any:
    for model in models:
        if model.architecture == architecture:
            return model
    known = [model.architecture for model in models]
    raise SeqflowError(f"the earlier execution {what} no {architecture!r} model; it {what}: {known}")


def state_to_json(state: PipelineState | CharLMState) -> str:
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


def _flat_overrides(flat: dict[str, Any]) -> dict[str, Any]:
    return {key: ("none" if value is None else value) for key, value in flat.items() if key != "profile"}


def config_from_flat(flat: dict[str, Any]) -> PipelineConfig:
    """The configuration an earlier execution ran with, from its flat ``section.field`` form."""
    return with_overrides(get_profile(str(flat.get("profile", "quick"))), _flat_overrides(flat))


def charlm_config_from_flat(flat: dict[str, Any]) -> CharLMConfig:
    """The configuration an earlier ``seqflow charlm run`` ran with, from its flat ``section.field`` form."""
    return resolve_charlm_config(str(flat.get("profile", "quick")), None, _flat_overrides(flat))


def _state_from_json(state_type: type, config_loader: Any, text: str) -> Any:
    payload = json.loads(text)
    hints = typing.get_type_hints(state_type)
    return state_type(
        config=config_loader(payload["config"]),
        **{name: _load(hints[name], payload.get(name)) for name in hints if name != "config"},
    )


def state_from_json(text: str) -> PipelineState:
    return _state_from_json(PipelineState, config_from_flat, text)


def charlm_state_from_json(text: str) -> CharLMState:
    return _state_from_json(CharLMState, charlm_config_from_flat, text)
