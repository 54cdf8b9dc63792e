"""The Keras fitting machinery both pipelines share: one explicit seed, optimizers by name, progress reported to
the run's reporter, and where an interrupted training keeps its per-epoch checkpoint (see
:mod:`seqflow.core.checkpoints`). Plain Keras; tracking arrives as a callback (:data:`EpochCallback`)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from seqflow.core.progress import keras_progress_callback


@dataclass(frozen=True)
class FitOutcome:
    """What every pipeline's fit produced besides its files and scores: the architecture, its per-epoch history
    and timings."""

    architecture: str
    history: dict[str, list[float]]
    epochs_run: int
    # Wall time of all epochs, those of an interrupted earlier attempt included.
    seconds: float
    # Epochs taken over from the checkpoint of an interrupted training; 0 for a fresh training.
    resumed_from_epoch: int = field(default=0, kw_only=True)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs_run, 1)

logger = logging.getLogger(__name__)

# Called after every epoch with the 1-based epoch number and Keras' logs (loss, accuracy, val_loss, ...).
EpochCallback = Callable[[int, dict[str, float]], None]
# Hex characters of a training fingerprint (64 bits): folder names stay short, collisions stay unlikely.
FINGERPRINT_CHARS = 16


def training_fingerprint_of(parts: dict[str, Any]) -> str:
    """Names one training by what decides its result (data digests, architecture, settings, seed): a re-run
    after a crash finds the checkpoint of the interrupted training, and nothing else."""
    key = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:FINGERPRINT_CHARS]


def checkpoint_dir_for(artifacts_dir: str | Path, fingerprint: str) -> Path:
    """Where the training named by ``fingerprint`` keeps its per-epoch checkpoint."""
    return Path(artifacts_dir) / "checkpoints" / fingerprint


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels (CPU: fully)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_optimizer(name: str, learning_rate, clipnorm: float | None):  # noqa: ANN001, ANN201 - keras types
    """A Keras optimizer by name; ``learning_rate`` is a number or a schedule, ``clipnorm`` a global-norm clip."""
    import keras

    from seqflow.core.optimizers import LazyAdam

    optimizers = {
        "adam": keras.optimizers.Adam,
        "lazy_adam": LazyAdam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    }
    return optimizers[name](learning_rate=learning_rate, global_clipnorm=clipnorm)


@dataclass(frozen=True)
class ResumableFit:
    """What :func:`resumable_fit` leaves: the fitted model, where it was saved, the epoch it resumed after (0:
    trained from scratch) and the checkpoint's records (history, epochs run, seconds)."""

    model: Any
    model_path: Path
    resumed_from_epoch: int
    checkpoint: Any


def resumable_fit(
    architecture: str,
    model: Any,
    rebuild_model: Callable[[], Any],
    early_stopping: Any,
    checkpoint_dir: Path | None,
    restore_best_weights: bool,
    epochs: int,
    callbacks_before_checkpoint: Callable[[int], list],
    fit_inputs: Callable[[], tuple[tuple, dict[str, Any]]],
    output_dir: Path,
    on_epoch_end: EpochCallback | None,
    epoch_metrics: Callable[[dict[str, float]], dict[str, float]],
    stopped_note: str,
    sizes_note: str = "",
    save_more: Callable[[Any, Path], None] | None = None,
) -> ResumableFit:
    """Fit a compiled ``model`` for up to ``epochs``, resuming an interrupted training from its per-epoch
    checkpoint in ``checkpoint_dir`` (none: no checkpoint), then save it as ``<architecture>.keras`` in
    ``output_dir`` (and what ``save_more`` saves) before the checkpoint goes.

    ``rebuild_model`` gives the same fresh model again when the checkpoint cannot be used (loading may have
    failed half-way). ``callbacks_before_checkpoint(resumed_from_epoch)`` are the pipeline's callbacks: they
    run before the checkpoint saves the epoch, and tracking (``on_epoch_end`` with ``epoch_metrics`` of
    Keras' logs, epochs counted from 1) hears of an epoch only after that; epochs an interrupted training
    already ran are replayed to it first. ``fit_inputs()`` gives the data arguments of ``model.fit`` (positional,
    keyword), made just before the fit. ``stopped_note`` ends the resume message when early stopping had
    already ended the training; ``sizes_note`` goes after the parameter count in the start message."""
    import keras

    from seqflow.core.checkpoints import EpochCheckpoint, UnusableCheckpoint

    checkpoint = EpochCheckpoint(checkpoint_dir, early_stopping)
    try:
        resumed_from_epoch = checkpoint.restore(model, restore_best_weights)
    except UnusableCheckpoint:
        model, resumed_from_epoch = rebuild_model(), 0
    callbacks: list = [*callbacks_before_checkpoint(resumed_from_epoch), checkpoint]
    if on_epoch_end is not None:
        for record in checkpoint.records:
            on_epoch_end(record.epoch, epoch_metrics(record.logs))
        # Keras counts epochs from 0; people and MLflow charts read "epoch 1" as the first.
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch_end(epoch + 1, epoch_metrics(logs)))
        )
    if resumed_from_epoch:
        logger.info("training %s: resuming after epoch %d of %d from %s%s", architecture, resumed_from_epoch, epochs,
                    checkpoint.checkpoint_dir, stopped_note if checkpoint.stopped else "")
    logger.info("training %s: %d parameters%s, up to %d epochs", architecture, model.count_params(), sizes_note, epochs)
    fit_args, fit_kwargs = fit_inputs()
    # Progress goes to the run's reporter (live display, plain lines or the log: seqflow.core.progress), never
    # Keras' own prints to stdout, which would land among the results table. Last: it reads what the callbacks
    # before it added to the epoch's logs and whether early stopping ended the training.
    progress = [keras_progress_callback(architecture, epochs, resumed_from_epoch)]
    model.fit(
        *fit_args,
        initial_epoch=resumed_from_epoch,
        # Early stopping ended the interrupted training already: fit no further epoch, only restore the best.
        epochs=resumed_from_epoch if checkpoint.stopped else epochs,
        callbacks=callbacks + progress,
        verbose=0,
        **fit_kwargs,
    )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / f"{architecture}.keras"
    model.save(model_path)
    if save_more is not None:
        save_more(model, output_dir)
    # Only now that everything is saved: a crash before this resumes from the checkpoint.
    checkpoint.remove()
    return ResumableFit(model=model, model_path=model_path, resumed_from_epoch=resumed_from_epoch, checkpoint=checkpoint)
