"""Training: compile and fit one architecture on padded ids. Plain Keras; tracking arrives as a callback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from seqflow.config import TrainingConfig

logger = logging.getLogger(__name__)

# Called after every epoch with the 1-based epoch number and Keras' logs (loss, accuracy, val_loss, ...).
EpochCallback = Callable[[int, dict[str, float]], None]
# Hex characters of a training fingerprint (64 bits): folder names stay short, collisions stay unlikely.
FINGERPRINT_CHARS = 16


@dataclass(frozen=True)
class TrainingOutcome:
    """What fitting produced: the saved classifier, its per-epoch history and timings."""

    architecture: str
    classifier_path: Path
    history: dict[str, list[float]]
    epochs_run: int
    # Wall time of all epochs, those of an interrupted earlier attempt included.
    seconds: float
    # Epochs taken over from the checkpoint of an interrupted training; 0 for a fresh training.
    resumed_from_epoch: int = 0

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs_run, 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels (CPU: fully)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_optimizer(training: TrainingConfig):  # noqa: ANN201 - a keras.optimizers.Optimizer
    import keras

    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}
    return optimizers[training.optimizer](learning_rate=training.learning_rate, global_clipnorm=training.clipnorm)


def training_fingerprint(array_digest: str, vocab_size: int, architecture: str, training: TrainingConfig, seed: int) -> str:
    """Names one training: the same padded arrays, architecture, training settings and seed give the same
    fingerprint, so a re-run after a crash finds the checkpoint of the interrupted training and nothing else.

    ``training.architectures`` (which other models the run trains) and ``training.checkpoint`` do not change
    this model's training and are left out.
    """
    settings = {key: value for key, value in dataclasses.asdict(training).items() if key not in ("architectures", "checkpoint")}
    key = json.dumps(
        {"arrays": array_digest, "vocab_size": vocab_size, "architecture": architecture, "training": settings, "seed": seed},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:FINGERPRINT_CHARS]


def checkpoint_dir_for(artifacts_dir: str | Path, fingerprint: str) -> Path:
    """Where the training named by ``fingerprint`` keeps its per-epoch checkpoint."""
    return Path(artifacts_dir) / "checkpoints" / fingerprint


def train_classifier(
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    seed: int,
    output_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainingOutcome:
    """Fit ``architecture`` on ``x_train`` with ``x_validation`` for early stopping; save it as ``.keras``.

    With ``checkpoint_dir``, the state after every epoch is saved there, and a training that was interrupted
    (same folder, see :func:`training_fingerprint`) resumes after its last completed epoch: ``on_epoch_end`` is
    first called again for the epochs already done, and the outcome covers all epochs. The folder is deleted
    once the model is saved. The test split is not touched here: evaluation uses it once, after training.
    """
    import keras

    seed_everything(seed)
    # The dtype policy is global in Keras: set it for this model only and restore it afterwards.
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(training.precision)
    try:
        return _fit_and_save(architecture, arrays, vocab_size, training, seed, output_dir, on_epoch_end, checkpoint_dir)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _compiled_model(architecture: str, vocab_size: int, training: TrainingConfig):  # noqa: ANN202 - a keras.Model
    from seqflow.models.architectures import ModelSpec, build_model

    spec = ModelSpec(
        vocab_size=vocab_size,
        embedding_dim=training.embedding_dim,
        rnn_units=training.rnn_units,
        dense_units=training.dense_units,
        dropout=training.dropout,
        mask_padding=training.mask_padding,
    )
    model = build_model(architecture, spec)
    model.compile(optimizer=make_optimizer(training), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _fit_and_save(
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    seed: int,
    output_dir: Path,
    on_epoch_end: EpochCallback | None,
    checkpoint_dir: Path | None,
) -> TrainingOutcome:
    import keras

    from seqflow.checkpoints import EpochCheckpoint, UnusableCheckpoint

    model = _compiled_model(architecture, vocab_size, training)
    early_stopping = (
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=training.early_stopping_patience,
            restore_best_weights=training.restore_best_weights,
        )
        if training.early_stopping_patience is not None
        else None
    )
    checkpoint = EpochCheckpoint(checkpoint_dir, early_stopping)
    try:
        resumed_from_epoch = checkpoint.restore(model, training.restore_best_weights)
    except UnusableCheckpoint:
        # Loading may have failed half-way: start again from the same initial weights as a fresh training.
        seed_everything(seed)
        model = _compiled_model(architecture, vocab_size, training)
        resumed_from_epoch = 0
    # Order matters: the checkpoint reads early stopping's state after it changed, and the tracking callback
    # sees an epoch only once it is saved.
    callbacks: list[keras.callbacks.Callback] = [early_stopping] if early_stopping is not None else []
    callbacks.append(checkpoint)
    if on_epoch_end is not None:
        for record in checkpoint.records:
            on_epoch_end(record.epoch, record.logs)
        # Keras counts epochs from 0; people and MLflow charts read "epoch 1" as the first.
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})
            )
        )

    if resumed_from_epoch:
        logger.info(
            "training %s: resuming after epoch %d of %d from %s%s",
            architecture,
            resumed_from_epoch,
            training.epochs,
            checkpoint.checkpoint_dir,
            " (early stopping had already ended it)" if checkpoint.stopped else "",
        )
    logger.info("training %s: %d parameters, up to %d epochs", architecture, model.count_params(), training.epochs)
    model.fit(
        arrays["x_train"],
        arrays["y_train"],
        validation_data=(arrays["x_validation"], arrays["y_validation"]),
        initial_epoch=resumed_from_epoch,
        # Early stopping ended the interrupted training already: fit no further epoch, only restore the best.
        epochs=resumed_from_epoch if checkpoint.stopped else training.epochs,
        batch_size=training.batch_size,
        shuffle=True,
        callbacks=callbacks,
        # A progress bar on a terminal; one line per epoch in logs and CI.
        verbose=1 if sys.stdout.isatty() else 2,
    )

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    classifier_path = output_dir / f"{architecture}.keras"
    model.save(classifier_path)
    checkpoint.remove()
    return TrainingOutcome(
        architecture=architecture,
        classifier_path=classifier_path,
        history=checkpoint.history(),
        epochs_run=len(checkpoint.records),
        seconds=checkpoint.seconds,
        resumed_from_epoch=resumed_from_epoch,
    )


def export_serving_model(
    classifier_path: Path, vocabulary: list[str], max_length: int, padding: str, truncation: str, output_path: Path
) -> Path:
    """Save the raw-text model: vectoriser + padding + the trained classifier, as one ``.keras`` file."""
    import keras

    from seqflow.models.architectures import build_serving_model

    classifier = keras.saving.load_model(classifier_path)
    serving = build_serving_model(classifier, vocabulary, max_length, padding, truncation)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    serving.save(output_path)
    return output_path
