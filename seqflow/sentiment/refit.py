"""Refit on all labelled data: once the validation split has chosen an architecture's epochs, fit the same
settings again on train + validation for that many epochs (``training.refit``). Plain Keras, like
:mod:`seqflow.sentiment.train`; the step that tracks it is ``refit`` in :mod:`seqflow.tasks.sentiment`.

Nothing is left to stop early (the validation rows are training rows now), so the epoch count is the one the
first fit chose: the epoch of its lowest validation loss when early stopping restored those weights, else every
epoch it ran. The test split is never read here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path

import numpy as np

from seqflow.core.fitting import EpochCallback, seed_everything
from seqflow.sentiment.config import TrainingConfig
from seqflow.sentiment.train import EmbeddingSource, TrainingOutcome, compiled_model, dtype_policy, input_pipeline, training_subset

# The splits a refit fits on, in this order (recorded on its run).
REFIT_SPLITS = ("train", "validation")


def chosen_epochs(history: dict[str, list[float]], training: TrainingConfig) -> int:
    """How many epochs the validation split chose for ``training`` (already resolved for one architecture)."""
    val_loss = [value for value in history.get("val_loss") or [] if math.isfinite(value)]
    epochs_run = len(history.get("loss") or history.get("val_loss") or [])
    if training.early_stopping_patience is not None and training.restore_best_weights and val_loss:
        return int(np.argmin(val_loss)) + 1
    return max(epochs_run, 1)


def refit_arrays(
    arrays: dict[str, np.ndarray], max_train_rows: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The rows a refit fits on: train then validation, never test. With ``max_train_rows`` (the architecture's
    training.max_train_rows and the run's seed) the training rows are the same sample the first fit read."""
    arrays = training_subset(arrays, max_train_rows, seed)
    x = np.concatenate([arrays[f"x_{split}"] for split in REFIT_SPLITS])
    y = np.concatenate([arrays[f"y_{split}"] for split in REFIT_SPLITS])
    return x, y


def rows_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of exactly the id rows and labels a fit read (shape and dtype included)."""
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class RefitOutcome:
    """The refitted classifier, the epochs it ran and the digest of the rows it read."""

    training: TrainingOutcome
    rows: int
    data_digest: str


def refit_classifier(
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    seed: int,
    epochs: int,
    output_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    *,
    vocabulary: list[str] | None = None,
    warm_start: EmbeddingSource | None = None,
) -> RefitOutcome:
    """Fit a fresh ``architecture`` (same seed and settings) on train + validation for ``epochs`` epochs and save
    it as ``<architecture>_refit.keras`` (on the training rows the first fit read, with training.max_train_rows,
    plus the validation rows). nbsvm counts its log-count ratios on the same rows; a ``warm_start``
initialises the embedding as it did for the first fit."""
    import keras

    from seqflow.core.divergence import stop_on_non_finite_loss

    resolved = dataclasses.replace(training.for_architecture(architecture), epochs=epochs, early_stopping_patience=None)
    x, y = refit_arrays(arrays, resolved.max_train_rows, seed)
    seed_everything(seed)
    with dtype_policy(resolved.precision):
        steps_per_epoch = math.ceil(len(x) / resolved.batch_size)
        model = compiled_model(
            architecture, {"x_train": x, "y_train": y}, vocab_size, resolved, steps_per_epoch, vocabulary, warm_start
        )
        callbacks = [stop_on_non_finite_loss(architecture, resolved.learning_rate)]
        if on_epoch_end is not None:
            callbacks.append(keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(epoch, {k: float(v) for k, v in (logs or {}).items()})
            ))
        started = time.perf_counter()
        # No validation data and no plateau schedule: there is nothing left to validate on.
        fitted = model.fit(
            input_pipeline(x, y, resolved.batch_size, seed=seed), epochs=epochs, shuffle=False, callbacks=callbacks, verbose=0
        )
        seconds = time.perf_counter() - started
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{architecture}_refit.keras"
    model.save(path)
    history = {key: [float(value) for value in values] for key, values in fitted.history.items()}
    outcome = TrainingOutcome(
        architecture=architecture, classifier_path=path, history=history, epochs_run=len(history.get("loss", [])), seconds=seconds,
        train_rows=len(x),
    )
    return RefitOutcome(outcome, len(x), rows_digest(x, y))
