"""The Keras fitting machinery both pipelines share: one explicit seed, optimizers by name, progress that suits
the terminal (or the log), and where an interrupted training keeps its per-epoch checkpoint (see
:mod:`seqflow.core.checkpoints`). Plain Keras; tracking arrives as a callback (:data:`EpochCallback`)."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

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


def progress_reporting(what: str, total_epochs: int) -> tuple[int, list]:
    """Keras' ``verbose`` and extra callbacks for a fit: the progress bar on a terminal; elsewhere (logs, CI,
    ``seqflow run`` piped to a file) one log line per epoch through this module's logger, instead of Keras'
    own prints to stdout, which would land among the results table."""
    if sys.stdout.isatty():
        return 1, []
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs=None) -> None:  # noqa: ANN001 - Keras callback signature
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
            metrics = ", ".join(f"{name} {float(value):.4f}" for name, value in (logs or {}).items())
            logger.info(
                "training %s: epoch %d/%d in %.1f s: %s",
                what, epoch + 1, total_epochs, time.perf_counter() - self.started, metrics,
            )

    return 0, [EpochLog()]
