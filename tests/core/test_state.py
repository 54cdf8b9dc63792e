"""seqflow.core.state without a pipeline: a toy pipeline's state class names the types of the fields every
execution state has and adds its own; pipeline_state.json reads back into exactly those types."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seqflow.core.contracts import ContractReport
from seqflow.core.errors import SeqflowError
from seqflow.core.model_registry import RegisteredVersion
from seqflow.core.registry import RegistrationOutcome
from seqflow.core.state import ExecutionState, read_state, state_to_json


@dataclass(frozen=True)
class ToyConfig:
    profile: str
    steps: int

    def to_flat_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "training.steps": self.steps}


@dataclass(frozen=True)
class ToySplits:
    train: Path
    digests: dict[str, str]


@dataclass(frozen=True)
class ToyTrained:
    architecture: str
    model_path: Path


@dataclass(frozen=True)
class ToyEvaluated:
    architecture: str
    score: float


@dataclass(frozen=True)
class ToyPrepared:
    arrays_path: Path
    rows: int


@dataclass(frozen=True)
class ToyState(ExecutionState[ToyConfig, ToySplits, ToyTrained, ToyEvaluated]):
    prepared: ToyPrepared


def _read(text: str) -> ToyState:
    return read_state(ToyState, lambda profile, overrides: ToyConfig(profile, int(overrides["training.steps"])), text)


def test_a_state_reads_back_into_the_types_its_class_names(tmp_path: Path):
    report = ContractReport("raw", True, tmp_path / "raw", tmp_path / "raw" / "results.json", None, 3)
    registration = RegistrationOutcome([RegisteredVersion("b", "1", "run-b", 0.75, score=0.75)], None, "1")
    state = ToyState(
        config=ToyConfig("quick", 7), split_files=ToySplits(tmp_path / "train.csv", {"train": "abc"}),
        contract_reports=[report], trained=[ToyTrained("a", tmp_path / "a.keras"), ToyTrained("b", tmp_path / "b.keras")],
        evaluated=[ToyEvaluated("b", 0.75)], registration=registration, prepared=ToyPrepared(tmp_path / "arrays.npz", 12),
    )
    loaded = _read(state_to_json(state))
    # A tuple field reads back as a list (ContractReport.splits), so the report is compared by its parts.
    assert dataclasses.replace(loaded, contract_reports=state.contract_reports) == state
    assert isinstance(loaded.contract_reports[0], ContractReport) and loaded.contract_reports[0].results_path == report.results_path
    # Rebuilt as the named types, not left as JSON objects and strings.
    assert isinstance(loaded.trained[1], ToyTrained) and isinstance(loaded.trained[1].model_path, Path)
    assert isinstance(loaded.split_files, ToySplits) and isinstance(loaded.prepared.arrays_path, Path)
    assert loaded.trained_model("b") == ToyTrained("b", tmp_path / "b.keras")
    assert loaded.evaluated_model("b").score == 0.75
    with pytest.raises(SeqflowError, match=r"the earlier execution evaluated no 'a' model; it evaluated: \['b'\]"):
        loaded.evaluated_model("a")
