"""What the character-model pipeline's steps return: small frozen records of paths, run ids and figures, passed
between tasks (and cached), and one row of the comparison table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainedCharModel:
    architecture: str
    run_id: str
    step_model_path: Path
    model_uri: str
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    seconds: float
    seconds_per_epoch: float
    parameters: int


@dataclass(frozen=True)
class EvaluatedCharModel:
    architecture: str
    run_id: str
    model_uri: str
    dataset_digest: str
    val_loss: float
    val_perplexity: float
    best_epoch: int
    epochs_run: int
    seconds: float
    parameters: int


@dataclass(frozen=True)
class CharComparisonRow:
    architecture: str
    epochs: int
    best_epoch: int
    val_loss: float
    val_perplexity: float
    parameters: int
    seconds: float
    version: str | None
    champion: bool
