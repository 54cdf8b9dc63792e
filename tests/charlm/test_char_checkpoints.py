"""Character models resume an interrupted training from their last completed epoch, like the sentiment models
(tests/core/test_checkpoints.py); the process-level kill -9 test of the sentiment flow covers the shared parts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from seqflow.charlm.train import char_training_fingerprint, train_char_model
from seqflow.core.checkpoints import STATE_FILE
from seqflow.charlm.config import CharSamplingConfig, CharTrainingConfig
from tests.core.test_checkpoints import CrashAfterEpoch, StartingWeights, fit_watched_by

VOCABULARY = ["\ufffd", "\n", " ", "a", "b", "c", "d", "e"]
TRAINING = CharTrainingConfig(
    rnn_units=16, embedding_dim=8, seq_length=20, batch_size=16, epochs=4, learning_rate=0.01,
    early_stopping_patience=None, validation_streams=2, validation_window=50,
)
SAMPLING = CharSamplingConfig(every_epochs=1, length=10, temperatures=(1.0,))


def _ids(rng: np.random.Generator, length: int) -> np.ndarray:
    """A learnable text: words of a..e separated by spaces and line breaks."""
    return rng.choice(len(VOCABULARY) - 1, size=length, p=[0.1, 0.2, 0.14, 0.14, 0.14, 0.14, 0.14]).astype(np.int32) + 1


def _train(tmp_path: Path, checkpoint_dir: Path | None, watcher, logged: list, samples: list, training=TRAINING):
    """train_char_model with ``watcher`` added to fit's callbacks; a crash propagates."""
    rng = np.random.default_rng(0)
    with fit_watched_by(watcher):
        return train_char_model(
            "char_gru", _ids(rng, 4000), _ids(rng, 600), VOCABULARY, training, SAMPLING, "ab", 7, tmp_path / "out",
            on_epoch_end=lambda epoch, metrics: logged.append((epoch, metrics)),
            on_samples=lambda epoch, text: samples.append(epoch),
            checkpoint_dir=checkpoint_dir,
        )


def test_fingerprint_names_the_training_not_the_run():
    base = char_training_fingerprint("ids", 8, "char_gru", TRAINING, 7)
    assert base == char_training_fingerprint("ids", 8, "char_gru", dataclasses.replace(TRAINING, checkpoint=False), 7)
    assert base == char_training_fingerprint("ids", 8, "char_gru", dataclasses.replace(TRAINING, architectures=("char_lstm",)), 7)
    assert base != char_training_fingerprint("ids", 8, "char_lstm", TRAINING, 7)
    assert base != char_training_fingerprint("other", 8, "char_gru", TRAINING, 7)
    assert base != char_training_fingerprint("ids", 8, "char_gru", dataclasses.replace(TRAINING, learning_rate=0.02), 7)
    assert base != char_training_fingerprint("ids", 8, "char_gru", TRAINING, 8)


def test_interrupted_character_training_resumes_after_its_last_completed_epoch(tmp_path):
    checkpoint_dir = tmp_path / "checkpoints" / "char"
    first_logged, first_samples = [], []
    crash = CrashAfterEpoch(2)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _train(tmp_path, checkpoint_dir, crash, first_logged, first_samples)
    state = json.loads((checkpoint_dir / STATE_FILE).read_text())
    assert [record["epoch"] for record in state["epochs"]] == [1, 2]
    # The checkpoint holds the carried-state validation metrics, not only Keras' training loss.
    assert set(state["epochs"][0]["logs"]) >= {"loss", "perplexity", "val_loss", "val_perplexity"}

    second_logged, second_samples = [], []
    resumed = StartingWeights()
    outcome = _train(tmp_path, checkpoint_dir, resumed, second_logged, second_samples)
    assert outcome.resumed_from_epoch == 2
    assert resumed.epochs_begun == [3, 4]
    for got, wanted in zip(resumed.weights, crash.last_weights):
        np.testing.assert_array_equal(got, wanted)
    assert resumed.optimizer_steps == crash.optimizer_steps > 0
    # Tracking hears of all four epochs, the first two exactly as the killed attempt logged them.
    assert [epoch for epoch, _ in second_logged] == [1, 2, 3, 4]
    assert second_logged[:2] == first_logged[:2]
    assert list(second_logged[0][1]) == ["loss", "perplexity", "val_loss", "val_perplexity"]
    # Samples of the resumed epochs are not generated twice.
    assert first_samples == [1, 2] and second_samples == [3, 4]
    assert outcome.epochs_run == 4 and len(outcome.history["val_loss"]) == 4
    assert outcome.best_val_loss == min(outcome.history["val_loss"])
    assert outcome.history["val_loss"][outcome.best_epoch - 1] == outcome.best_val_loss
    assert not checkpoint_dir.exists()
    assert outcome.model_path.is_file() and outcome.step_model_path.is_file()


def test_early_stopping_keeps_the_best_epoch_and_stops_after_its_patience(tmp_path):
    """With a high learning rate validation loss turns up after a few epochs (measured: best epoch 4 of 8):
    training stops `patience` epochs after the best one and saves that epoch's weights."""
    from seqflow.charlm.train import stream_loss

    logged, samples = [], []
    training = dataclasses.replace(TRAINING, epochs=8, learning_rate=0.1, early_stopping_patience=1)
    outcome = _train(tmp_path, None, StartingWeights(), logged, samples, training)
    val_losses = outcome.history["val_loss"]
    assert outcome.best_epoch == int(np.argmin(val_losses)) + 1
    assert outcome.epochs_run == outcome.best_epoch + 1 < 8
    # The saved step model is the best epoch's, not the last one's.
    rng = np.random.default_rng(0)
    _ids(rng, 4000)
    validation_ids = _ids(rng, 600)
    step_model = keras.saving.load_model(outcome.step_model_path)
    measured = stream_loss(step_model, validation_ids, training.validation_streams, training.validation_window)
    assert measured == pytest.approx(outcome.best_val_loss, rel=1e-4)
    assert measured != pytest.approx(val_losses[-1], rel=1e-4)
    # Samples come from the last epoch trained, however training ended.
    assert samples[-1] == outcome.epochs_run


def test_shifted_windows_move_every_epoch_and_a_resumed_training_continues_their_offsets(tmp_path):
    """training.shift_windows: each epoch cuts the text at another seeded offset, and a training interrupted
    after epoch 2 ends with the same weights as one that ran its four epochs without stopping."""
    from seqflow.charlm.train import epoch_offset, shifted_windows

    ids = np.arange(101, dtype=np.int32)
    for offset in (0, 7, 19):
        x, y = shifted_windows(ids, 20, offset)
        assert x.shape == y.shape == (4, 20)  # the same count for every offset
        assert x[0, 0] == offset and (y == x + 1).all()
    offsets = [epoch_offset(7, epoch, 20) for epoch in range(6)]
    assert len(set(offsets)) > 1 and offsets == [epoch_offset(7, epoch, 20) for epoch in range(6)]

    shifted = dataclasses.replace(TRAINING, shift_windows=True)
    whole = StartingWeights()
    uninterrupted = _train(tmp_path / "whole", None, whole, [], [], training=shifted)
    assert uninterrupted.epochs_run == 4

    checkpoint_dir = tmp_path / "checkpoints" / "shifted"
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _train(tmp_path / "crashed", checkpoint_dir, CrashAfterEpoch(2), [], [], training=shifted)
    resumed_logged: list = []
    resumed = _train(tmp_path / "crashed", checkpoint_dir, StartingWeights(), resumed_logged, [], training=shifted)
    assert resumed.resumed_from_epoch == 2
    final = keras.saving.load_model(uninterrupted.model_path).get_weights()
    for got, wanted in zip(keras.saving.load_model(resumed.model_path).get_weights(), final):
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-6)
