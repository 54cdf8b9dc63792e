"""What the sentiment train and evaluate steps return, and the tags they put on a model's run.

Kept apart from the registration and reporting code (``steps``, ``comparison``) so that the training step's
code, and with it its cache key (see :mod:`seqflow.core.codedigest`), does not include theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seqflow.core.splits import split_tags
from seqflow.sentiment.datasets import SPLITS, SplitFiles
from seqflow.sentiment.tokenise import TokenisedData

# Tag on each architecture's run: epochs taken over from an interrupted earlier training (0: trained from scratch).
RESUMED_FROM_EPOCH_TAG = "resumed_from_epoch"
# Tag on each architecture's run: names its training (data, architecture, settings, seed); see training_fingerprint.
FINGERPRINT_TAG = "seqflow.training_fingerprint"

# Reviews stored with each logged model as its input example.
INPUT_EXAMPLE_TEXTS = ["A moving, beautifully acted film.", "Dull plot and wooden acting; I walked out."]


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
    # A refitted model (training.refit): the run whose fit chose its epochs on validation, and that fit's
    # classifier, whose validation predictions are still out of sample (an ensemble's stack is fitted on them).
    # ``history`` stays that fit's (it is what chose the epochs); the refit's own is logged on its run.
    refit_of_run_id: str | None = None
    selection_classifier_path: Path | None = None

    @property
    def validated_classifier_path(self) -> Path:
        """The classifier that never trained on the validation split (the refit's selection fit, or this one)."""
        return self.selection_classifier_path or self.classifier_path


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


def dataset_tags(split_files: SplitFiles, tokenised: TokenisedData) -> dict[str, str]:
    """The tags that name an execution's data, on its parent run and on every child run."""
    return {**split_tags(split_files, SPLITS), "array_digest": tokenised.array_digest}
