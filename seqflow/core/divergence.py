"""Stopping a training whose loss is no longer a number.

A learning rate far too high drives the weights to infinity or NaN within a few batches; Keras trains on
(every later batch is NaN too) and the model that comes out predicts NaN, which evaluation only notices as a
scikit-learn "Input contains NaN" traceback. (A character model's cross-entropy from logits stays finite instead:
it grows to 1e31, so there a loss far beyond what guessing uniformly scores counts as diverged too.) Keras' own ``TerminateOnNaN`` stops the fit but returns normally,
so the useless model would still be saved, evaluated and registered. This callback raises instead: the step
that trains ends its MLflow run FAILED and the execution registers nothing.
"""

from __future__ import annotations

import math
from typing import Any

from seqflow.core.errors import SeqflowError

# The setting a diverged training is told to lower, as written in --set.
LEARNING_RATE_SETTING = "training.learning_rate"


class TrainingDiverged(SeqflowError):
    """A training's loss became NaN or infinite; the model is discarded."""


# A loss this many times that of a uniform guess over the classes means the training has run away: a fresh
# model starts near 1x, and no training that learns anything gets anywhere near 100x.
DIVERGED_LOSS_FACTOR = 100.0


def diverged_loss_bound(classes: int) -> float:
    """The loss beyond which a classifier over ``classes`` classes (cross-entropy) has diverged."""
    return DIVERGED_LOSS_FACTOR * math.log(max(classes, 2))


def _divergence(value: Any, max_loss: float | None) -> str | None:
    """How ``value`` shows a diverged training (``"nan"``, ``"inf"``, ``"1.9e+31, beyond ..."``), or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return str(number)
    if max_loss is not None and number > max_loss:
        return f"{number:.3g}, beyond {max_loss:.3g} ({DIVERGED_LOSS_FACTOR:g} times the loss of a uniform guess)"
    return None


def stop_on_non_finite_loss(
    architecture: str, learning_rate: float, first_epoch: int = 0, max_loss: float | None = None
) -> Any:
    """A Keras callback that raises :class:`TrainingDiverged` at the first batch whose loss is NaN or infinite
    (or above ``max_loss``; and at an epoch end whose validation loss is), naming ``architecture`` and the
    learning rate to lower.

    Put it before the epoch checkpoint, early stopping and tracking: they must never see a diverged epoch.
    ``first_epoch`` is where a resumed fit starts (Keras counts epochs from it).
    """
    import keras

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if shown := _divergence((logs or {}).get("loss"), max_loss):
                self._diverged("loss", shown, f"batch {batch + 1} of epoch {getattr(self, '_epoch', first_epoch) + 1}")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for key in ("loss", "val_loss"):
                if shown := _divergence((logs or {}).get(key), max_loss):
                    self._diverged(key, shown, f"the end of epoch {epoch + 1}")

        def _diverged(self, key: str, shown: str, where: str) -> None:
            self.model.stop_training = True
            raise TrainingDiverged(
                f"training {architecture} diverged: its {key} became {shown} at {where}, so the model is "
                f"discarded and nothing is registered; lower {LEARNING_RATE_SETTING} (it was {learning_rate:g}), "
                "e.g. --set training.learning_rate=0.001"
            )

    return StopOnNonFiniteLoss()
