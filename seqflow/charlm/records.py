"""What the character-model train and evaluate steps return, and the tags naming an execution's data.

Kept apart from registration and reporting (``steps``, ``comparison``) so that the training step's code, and
with it its cache key (see :mod:`seqflow.core.codedigest`), does not include theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqflow.charlm.baselines import BaselineScores
from seqflow.charlm.text import CHAR_SPLITS, CharEncodedData, CharSplitFiles
from seqflow.core.splits import split_tags


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
    # The n-gram side of a mixture model (training.ngram_interpolation), logged with the pyfunc; None: the network.
    mixture_path: Path | None = None


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
    # A mixture model's network alone and its weight λ (val_loss is then the mixture's); None for a network.
    network_val_loss: float | None = None
    mixture_weight: float | None = None
    # The unigram and n-gram baselines on the same validation characters (logged on the run too), which the
    # registration gate compares with; None in records of releases before they were carried here.
    baselines: BaselineScores | None = None


def dataset_tags(split_files: CharSplitFiles, encoded: CharEncodedData) -> dict[str, str]:
    """The tags that name an execution's data, on its parent run and on every child run."""
    return {**split_tags(split_files, CHAR_SPLITS), "ids_digest": encoded.ids_digest}
