"""What the sentiment pipeline's steps return: small frozen records of paths, run ids and figures, passed between
tasks (and cached), and one row of the comparison table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from seqflow.sentiment.behaviour import CHECK_TYPES, metric_name


@dataclass(frozen=True)
class TrainedModel:
    architecture: str
    run_id: str
    classifier_path: Path
    model_uri: str
    history: dict[str, list[float]]
    epochs_run: int
    seconds: float
    seconds_per_epoch: float


@dataclass(frozen=True)
class EvaluatedModel:
    architecture: str
    run_id: str
    model_uri: str
    dataset_digest: str
    test_metrics: dict[str, float]
    overfitting: dict[str, float]
    epochs_run: int
    seconds: float
    seconds_per_epoch: float
    # Per-epoch training history (for the parent run's overlay figure) and behavioural pass rates per check type.
    history: dict[str, list[float]] = field(default_factory=dict)
    behaviour: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ComparisonRow:
    architecture: str
    epochs: int
    best_val_accuracy: float
    test_accuracy: float
    roc_auc: float
    gap_at_end: float
    seconds: float
    version: str | None
    champion: bool
    # Overfitting figures (see seqflow.core.evaluation.overfitting_figures) and behavioural pass rates.
    best_epoch: int = 0
    gap_at_best: float = float("nan")
    epochs_past_best: int = 0
    behaviour: dict[str, float] = field(default_factory=dict)


def row_as_flat_dict(row: ComparisonRow) -> dict[str, object]:
    """A comparison row as flat columns, the behavioural pass rates as ``behaviour_<check>_pass_rate``."""
    flat = {key: value for key, value in asdict(row).items() if key != "behaviour"}
    return flat | {metric_name(check): row.behaviour.get(check, float("nan")) for check in CHECK_TYPES}
