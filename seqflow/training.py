"""Training: compile and fit one architecture on padded ids. Plain Keras; tracking arrives as a callback."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from seqflow.config import TrainingConfig

logger = logging.getLogger(__name__)

# Called after every epoch with the 1-based epoch number and Keras' logs (loss, accuracy, val_loss, ...).
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingOutcome:
    """What fitting produced: the saved classifier, its per-epoch history and timings."""

    architecture: str
    classifier_path: Path
    history: dict[str, list[float]]
    epochs_run: int
    seconds: float

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


def train_classifier(
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    seed: int,
    output_dir: Path,
    on_epoch_end: EpochCallback | None = None,
) -> TrainingOutcome:
    """Fit ``architecture`` on ``x_train`` with ``x_validation`` for early stopping; save it as ``.keras``.

    The test split is not touched here: evaluation uses it once, after training.
    """
    import keras

    seed_everything(seed)
    # The dtype policy is global in Keras: set it for this model only and restore it afterwards.
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(training.precision)
    try:
        return _fit_and_save(architecture, arrays, vocab_size, training, output_dir, on_epoch_end)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _fit_and_save(
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    output_dir: Path,
    on_epoch_end: EpochCallback | None,
) -> TrainingOutcome:
    import keras

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

    callbacks: list[keras.callbacks.Callback] = []
    if training.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=training.early_stopping_patience,
                restore_best_weights=training.restore_best_weights,
            )
        )
    if on_epoch_end is not None:
        # Keras counts epochs from 0; people and MLflow charts read "epoch 1" as the first.
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})
            )
        )

    logger.info("training %s: %d parameters, up to %d epochs", architecture, model.count_params(), training.epochs)
    started = time.perf_counter()
    history = model.fit(
        arrays["x_train"],
        arrays["y_train"],
        validation_data=(arrays["x_validation"], arrays["y_validation"]),
        epochs=training.epochs,
        batch_size=training.batch_size,
        shuffle=True,
        callbacks=callbacks,
        # A progress bar on a terminal; one line per epoch in logs and CI.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - started

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    classifier_path = output_dir / f"{architecture}.keras"
    model.save(classifier_path)
    values = {key: [float(v) for v in series] for key, series in history.history.items()}
    return TrainingOutcome(
        architecture=architecture,
        classifier_path=classifier_path,
        history=values,
        epochs_run=len(values.get("loss", [])),
        seconds=seconds,
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
