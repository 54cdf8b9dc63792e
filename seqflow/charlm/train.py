"""Training and evaluating a character model on id arrays. Plain Keras; tracking arrives as callbacks.

Validation loss is measured the way the model is used when it generates: over continuous validation text
with the recurrent state carried from window to window (:func:`stream_loss`), on the step model built from the
current weights, so stateful and stateless models are compared on the same footing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from seqflow.charlm.generate import CharGenerator
from seqflow.charlm.config import CharSamplingConfig, CharTrainingConfig
from seqflow.core.errors import DataSourceError
from seqflow.core.records import carried_over
from seqflow.core.fitting import EpochCallback, FitOutcome, build_optimizer, resumable_fit, seed_everything, training_fingerprint_of

logger = logging.getLogger(__name__)

# Called with the 1-based epoch and the samples' text (one block per seed and temperature).
SamplesCallback = Callable[[int, str], None]
# What a character model's run logs per epoch (and its history holds), in this order.
CHAR_HISTORY_KEYS = ("loss", "perplexity", "val_loss", "val_perplexity")


@dataclass(frozen=True)
class CharTrainingOutcome(FitOutcome):
    """The saved training and step models, the best epoch and the model's size (with the fit's history and
    timings)."""

    model_path: Path
    step_model_path: Path
    best_epoch: int
    best_val_loss: float
    parameters: int

    @property
    def best_val_perplexity(self) -> float:
        return math.exp(self.best_val_loss)


class TrainingBudget:
    """A wall-clock budget for an epoch loop: after each epoch, whether one more epoch (as long as the longest so
    far) would end past the budget. No budget (None) never stops training."""

    def __init__(self, minutes: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = None if minutes is None else minutes * 60.0
        self.clock = clock
        self.started: float | None = None
        self.longest_epoch = 0.0
        self.last_mark: float | None = None

    def start(self) -> None:
        self.started = self.last_mark = self.clock()

    def another_epoch_would_overrun(self, epochs_done: int) -> bool:
        if self.seconds is None or self.started is None or self.last_mark is None:
            return False
        now = self.clock()
        self.longest_epoch = max(self.longest_epoch, now - self.last_mark)
        self.last_mark = now
        return (now - self.started) + self.longest_epoch > self.seconds


def training_windows(ids: np.ndarray, seq_length: int, batch_size: int, stateful: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-character targets, ``(windows, seq_length)`` each.

    Stateless: consecutive non-overlapping windows of the text (shuffled by ``fit``). Stateful: the text is
    cut into ``batch_size`` contiguous streams and the windows are ordered so that row j of batch k+1 continues
    row j of batch k: the state a stateful layer carries over belongs to the text that follows.
    """
    ids = np.asarray(ids, dtype=np.int32)
    if stateful:
        stream_length = (len(ids) - 1) // batch_size
        steps = stream_length // seq_length
        if steps < 1:
            raise DataSourceError(
                f"training text of {len(ids):,} characters is too short for stateful training: {batch_size} streams "
                f"x windows of {seq_length} need at least {batch_size * seq_length + 1:,}"
            )
        used = steps * seq_length
        streams = np.stack([ids[j * stream_length : j * stream_length + used + 1] for j in range(batch_size)])
        x = streams[:, :-1].reshape(batch_size, steps, seq_length).transpose(1, 0, 2).reshape(-1, seq_length)
        y = streams[:, 1:].reshape(batch_size, steps, seq_length).transpose(1, 0, 2).reshape(-1, seq_length)
        return x, y
    windows = (len(ids) - 1) // seq_length
    if windows < 1:
        raise DataSourceError(f"training text of {len(ids):,} characters is shorter than one window of {seq_length + 1}")
    used = windows * seq_length
    return ids[:used].reshape(windows, seq_length), ids[1 : used + 1].reshape(windows, seq_length)


def shifted_windows(ids: np.ndarray, seq_length: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Stateless windows starting ``offset`` characters into the text (0 <= offset < seq_length); the same number
    of windows for every offset, so that an epoch has the same number of steps whatever it is."""
    ids = np.asarray(ids, dtype=np.int32)
    windows = (len(ids) - 1 - (seq_length - 1)) // seq_length
    if windows < 1:
        raise DataSourceError(f"training text of {len(ids):,} characters is too short to shift windows of {seq_length}")
    used = windows * seq_length
    return (
        ids[offset : offset + used].reshape(windows, seq_length),
        ids[offset + 1 : offset + used + 1].reshape(windows, seq_length),
    )


def epoch_offset(seed: int, epoch: int, seq_length: int) -> int:
    """Where epoch ``epoch`` (from 0) starts its windows: seeded by the run's seed and the epoch alone, so a
    resumed training cuts its remaining epochs where an uninterrupted one would."""
    return int(np.random.default_rng([seed, epoch]).integers(seq_length))


def stream_loss(step_model, ids: np.ndarray, streams: int, window: int) -> float:  # noqa: ANN001 - keras.Model
    """Mean next-character cross-entropy (nats per character) over ``ids``, read as ``streams`` contiguous
    streams in windows of ``window`` characters, carrying the state across windows."""
    sums, counts = stream_block_losses(step_model, ids, streams, window)
    return float(sums.sum()) / float(counts.sum())


def stream_block_losses(step_model, ids: np.ndarray, streams: int, window: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """The loss of :func:`stream_loss` per block, a block being one window of one stream: (loss sums, character
    counts), one per block, in the same order for any model of the same text (the paired test's rows)."""
    return block_sums(-stream_log_probabilities(step_model, ids, streams, window), window)


def block_sums(losses: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-character ``losses`` of shape (streams, stream length) summed per window of each stream, window after
    window (all streams' first windows, then their second ones, ...): (loss sums, character counts)."""
    sums, counts = [], []
    for start in range(0, losses.shape[1], window):
        part = losses[:, start : start + window]
        sums.append(part.sum(axis=1))
        counts.append(np.full(losses.shape[0], part.shape[1], dtype=np.int64))
    return np.concatenate(sums), np.concatenate(counts)


def stream_log_probabilities(step_model, ids: np.ndarray, streams: int, window: int) -> np.ndarray:  # noqa: ANN001
    """Natural-log probability the model gives each character it predicts when ``ids`` are read as ``streams``
    contiguous streams in windows of ``window`` characters, the state carried across windows: shape (streams,
    stream length), row j the characters after stream j's first (the positions of
    :func:`seqflow.charlm.baselines.scored_positions`, in its order once flattened)."""
    ids = np.asarray(ids, dtype=np.int32)
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    stream_length = (len(ids) - 1) // streams
    if stream_length < 1:
        raise DataSourceError(f"validation text of {len(ids)} characters is too short to score")
    rows = np.stack([ids[j * stream_length : (j + 1) * stream_length + 1] for j in range(streams)])
    states = [np.zeros((streams, int(t.shape[-1])), np.float32) for t in step_model.inputs[1:]]
    parts = []
    for start in range(0, stream_length, window):
        stop = min(start + window, stream_length)
        outputs = step_model([rows[:, start:stop], *states], training=False)
        logits = np.asarray(outputs[0], dtype=np.float64)
        states = [np.asarray(state) for state in outputs[1:]]
        targets = rows[:, start + 1 : stop + 1]
        peak = logits.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(logits - peak).sum(axis=-1)) + peak[..., 0]
        chosen = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        parts.append(chosen - log_norm)
    return np.concatenate(parts, axis=1)


def render_samples(generator: CharGenerator, prefix: str, sampling: CharSamplingConfig) -> str:
    """One block per (seed, temperature), headed by its settings; the same seeds every time so epochs compare."""
    blocks = []
    for seed in sampling.seeds:
        for temperature in sampling.temperatures:
            text = generator.generate(prefix, sampling.length, temperature, seed)
            blocks.append(f"--- seed {seed}, temperature {temperature:g}, prefix {prefix!r}\n{prefix}{text}\n")
    return "\n".join(blocks)


def char_training_fingerprint(ids_digest: str, vocab_size: int, architecture: str, training: CharTrainingConfig, seed: int) -> str:
    """Names one character-model training (encoded text, architecture, settings, seed), so a re-run after a crash
    finds the checkpoint of the interrupted training; ``architectures`` and ``checkpoint`` do not change it."""
    settings = {key: value for key, value in asdict(training).items() if key not in ("architectures", "checkpoint")}
    return training_fingerprint_of(
        {"ids": ids_digest, "vocab_size": vocab_size, "architecture": architecture, "training": settings, "seed": seed}
    )


def train_char_model(
    architecture: str,
    train_ids: np.ndarray,
    validation_ids: np.ndarray,
    vocabulary: list[str],
    training: CharTrainingConfig,
    sampling: CharSamplingConfig,
    sample_prefix: str,
    seed: int,
    output_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    on_samples: SamplesCallback | None = None,
    *,
    checkpoint_dir: Path | None = None,
) -> CharTrainingOutcome:
    """Fit ``architecture`` on shifted windows of ``train_ids``; after every epoch measure the carried-state
    validation loss, keep the best weights, and every ``sampling.every_epochs`` epochs generate samples.
    Saves the best model and its step model as ``.keras``.

    With ``checkpoint_dir``, the state after every epoch (weights, optimizer, history, best epoch and its weights)
    is saved there, and an interrupted training with the same folder resumes after its last completed epoch, as
    :func:`seqflow.sentiment.train.train_classifier` does: ``on_epoch_end`` hears the completed epochs again first. Samples
    of those epochs are not generated again, and a training budget counts from the resumption.
    """
    import keras

    from seqflow.core.divergence import diverged_loss_bound, stop_on_non_finite_loss
    from seqflow.models.charlm import CharLMSpec, build_char_model, build_step_model

    # The embedding width, units, layers, dropout, statefulness and batch size are the training settings'.
    spec = carried_over(CharLMSpec, training, vocab_size=len(vocabulary))

    def compiled_model() -> keras.Model:
        seed_everything(seed)
        model = build_char_model(architecture, spec)
        model.compile(
            optimizer=build_optimizer(training.optimizer, training.learning_rate, training.clipnorm),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    model = compiled_model()
    x, y = training_windows(train_ids, training.seq_length, training.batch_size, training.stateful)
    if training.stateful:
        # A stateful model has a fixed batch: drop the windows of an incomplete last batch.
        usable = len(x) // training.batch_size * training.batch_size
        x, y = x[:usable], y[:usable]

    # Keras' early stopping keeps the best epoch's weights (and restores them when fit ends) and, with a patience,
    # stops; without one it never stops, it only keeps the best. The checkpoint saves its state with every epoch.
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=training.early_stopping_patience if training.early_stopping_patience is not None else training.epochs + 1,
        restore_best_weights=True,
    )
    budget = TrainingBudget(training.max_training_minutes)

    class ValidationMetrics(keras.callbacks.Callback):
        """Adds the carried-state validation loss and both perplexities to the epoch's logs, which the callbacks
        after it (early stopping, the checkpoint, tracking) read."""

        def on_train_begin(self, logs=None) -> None:  # noqa: ANN001
            budget.start()

        def on_epoch_begin(self, epoch: int, logs=None) -> None:  # noqa: ANN001
            if training.stateful:
                # Each epoch reads the streams from their start again.
                for layer in self.model.layers:
                    if hasattr(layer, "reset_state") and getattr(layer, "stateful", False):
                        layer.reset_state()

        def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
            step_model = build_step_model(self.model)
            val_loss = stream_loss(step_model, validation_ids, training.validation_streams, training.validation_window)
            train_loss = float(logs["loss"])
            logs.update(
                perplexity=math.exp(min(train_loss, 50.0)), val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50.0))
            )
            logger.info("%s epoch %d: loss %.4f, val_loss %.4f (perplexity %.3f)", architecture, epoch + 1, train_loss,
                        val_loss, logs["val_perplexity"])

    class BudgetAndSamples(keras.callbacks.Callback):
        """After early stopping decided: stop when another epoch would overrun the budget; generate samples."""

        def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
            number = epoch + 1
            if self.model.stop_training:
                logger.info("%s: no better validation loss for %d epochs; stopping", architecture,
                            training.early_stopping_patience)
            elif number < training.epochs and budget.another_epoch_would_overrun(number):
                logger.info("%s: another epoch would end past the %.1f-minute training budget; stopping after epoch %d",
                            architecture, training.max_training_minutes, number)
                self.model.stop_training = True
            # Samples every few epochs and from the last epoch trained, however training ends.
            last_epoch = number == training.epochs or self.model.stop_training
            if on_samples is not None and (number % sampling.every_epochs == 0 or last_epoch):
                generator = CharGenerator(build_step_model(self.model), vocabulary)
                on_samples(number, render_samples(generator, sample_prefix, sampling))

    def callbacks_before_checkpoint(resumed_from_epoch: int) -> list:
        nonlocal first_epoch
        first_epoch = resumed_from_epoch  # the shifted windows of a resumed training continue its epochs' offsets
        # Order matters: metrics first, then a diverged epoch raises before anything else sees it, then early
        # stopping reads val_loss, then the budget, then the checkpoint (after these) saves the epoch with every
        # decision made, and only then does tracking hear of it.
        diverged = stop_on_non_finite_loss(
            architecture, training.learning_rate, resumed_from_epoch, max_loss=diverged_loss_bound(len(vocabulary))
        )
        return [ValidationMetrics(), diverged, early_stopping, BudgetAndSamples()]

    first_epoch = 0
    shifted_count = (len(train_ids) - 1 - (training.seq_length - 1)) // training.seq_length
    batches_per_epoch = max(1, math.ceil(shifted_count / training.batch_size))

    def fit_inputs() -> tuple[tuple, dict]:
        if training.shift_windows and not training.stateful:
            # shuffle=False: Keras would otherwise shuffle a PyDataset's indices, mixing epochs (each batch is
            # already drawn from its own epoch's shuffled windows).
            return (ShiftedWindowBatches(first_epoch),), {"steps_per_epoch": batches_per_epoch, "shuffle": False}
        # Stateful windows must stay in stream order; stateless ones are shuffled.
        return (x, y), {"batch_size": training.batch_size, "shuffle": not training.stateful}

    class ShiftedWindowBatches(keras.utils.PyDataset):
        """The batches of every remaining epoch in one sequence, each epoch's windows starting at its own seeded
        offset and shuffled (``training.shift_windows``). Keras' ``shuffle`` only reorders fixed windows, and
        redrawing in ``on_epoch_end`` races the next epoch's prefetch: here batch ``i`` is a function of ``i``
        alone, read with ``steps_per_epoch`` so one iterator runs through all epochs."""

        def __init__(self, epoch: int) -> None:
            super().__init__()
            self.first_epoch = epoch
            self.drawn: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

        def __len__(self) -> int:
            return max(1, training.epochs - self.first_epoch) * batches_per_epoch

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            epoch, batch = divmod(index, batches_per_epoch)
            epoch += self.first_epoch
            if self.drawn is None or self.drawn[0] != epoch:
                windows = shifted_windows(train_ids, training.seq_length, epoch_offset(seed, epoch, training.seq_length))
                self.drawn = (epoch, *windows, np.random.default_rng([seed, epoch, 1]).permutation(len(windows[0])))
            _, inputs, targets, order = self.drawn
            rows = order[batch * training.batch_size : (batch + 1) * training.batch_size]
            return inputs[rows], targets[rows]

    step_model_path = Path(output_dir) / f"{architecture}_step.keras"
    # Early stopping has restored the best epoch's weights (also after a resumed fit that ran no epoch) by the
    # time the models are saved.
    fit = resumable_fit(
        architecture, model, compiled_model, early_stopping, checkpoint_dir, True, training.epochs,
        callbacks_before_checkpoint, fit_inputs, output_dir, on_epoch_end, epoch_metrics=_char_metrics,
        stopped_note=" (it had already stopped)", sizes_note=f", {len(x)} windows",
        save_more=lambda fitted, _: build_step_model(fitted).save(step_model_path),
    )
    model, model_path, checkpoint, resumed_from_epoch = fit.model, fit.model_path, fit.checkpoint, fit.resumed_from_epoch
    history = {key: values for key, values in checkpoint.history().items() if key in CHAR_HISTORY_KEYS}
    best_index = int(np.argmin(history["val_loss"]))
    return CharTrainingOutcome(
        architecture=architecture,
        model_path=model_path,
        step_model_path=step_model_path,
        history=history,
        epochs_run=len(checkpoint.records),
        best_epoch=best_index + 1,
        best_val_loss=float(history["val_loss"][best_index]),
        seconds=checkpoint.seconds,
        parameters=int(model.count_params()),
        resumed_from_epoch=resumed_from_epoch,
    )


def _char_metrics(logs: dict[str, float]) -> dict[str, float]:
    """The per-epoch metrics a character model's run logs, from an epoch's logs."""
    return {key: float(logs[key]) for key in CHAR_HISTORY_KEYS}
