"""Per-epoch checkpoints: a training cut short resumes from its last completed epoch with its full history."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import pytest

from seqflow.core.checkpoints import OWNER_FILE, STATE_FILE
from seqflow.sentiment.config import DataConfig, TokenisationConfig, TrainingConfig
from seqflow.sentiment.datasets import split_source, write_splits
from seqflow.sentiment.sources import load_source
from seqflow.sentiment.tokenise import load_arrays, pad_and_tokenise
from seqflow.core.fitting import checkpoint_dir_for
from seqflow.sentiment.train import train_classifier, training_fingerprint

pytestmark = pytest.mark.slow

TRAINING = TrainingConfig(
    architectures=("embedding_pool",),
    epochs=4,
    batch_size=32,
    learning_rate=0.005,
    embedding_dim=8,
    dense_units=8,
    # Patience larger than the epochs: every run trains all 4 epochs, so epoch counts are exact.
    early_stopping_patience=10,
)
SEED = 7


@pytest.fixture(scope="module")
def tokenised(tmp_path_factory, short_reviews):
    """400 short real reviews, split, tokenised and padded to 48 ids."""
    folder = tmp_path_factory.mktemp("checkpoint-data")
    csv_path = folder / "reviews.csv"
    short_reviews.to_csv(csv_path, index=False)
    data_config = DataConfig(source=f"csv:{csv_path}")
    source = load_source(data_config)
    split_files = write_splits(split_source(source, data_config, SEED), source, data_config, SEED, folder)
    return pad_and_tokenise(split_files, TokenisationConfig(vocab_size=2000, max_length=48), folder)


class StartingWeights(keras.callbacks.Callback):
    """Keeps the weights the model has when fit starts, early stopping's state then, and the epochs fit runs."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[np.ndarray] = []
        self.epochs_begun: list[int] = []
        self.fit_callbacks: list[keras.callbacks.Callback] = []
        self.early_stopping_state: dict = {}

    def on_train_begin(self, logs=None):  # noqa: ANN001
        self.weights = self.model.get_weights()
        self.optimizer_steps = int(self.model.optimizer.iterations.numpy())
        # Runs after every seqflow callback's on_train_begin, so it sees early stopping as restored.
        for callback in self.fit_callbacks:
            if isinstance(callback, keras.callbacks.EarlyStopping):
                self.early_stopping_state = {
                    "wait": callback.wait,
                    "best": callback.best,
                    "best_epoch": callback.best_epoch,
                    "best_weights": callback.best_weights,
                }

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001
        self.epochs_begun.append(epoch + 1)


class CrashAfterEpoch(StartingWeights):
    """Simulates a process killed right after epoch ``epoch`` (1-based) was completed and saved; also keeps the
    weights the model had then."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch
        self.epoch_weights: list[list[np.ndarray]] = []

    @property
    def last_weights(self) -> list[np.ndarray]:
        return self.epoch_weights[-1]

    def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001
        self.epoch_weights.append(self.model.get_weights())
        self.optimizer_steps = int(self.model.optimizer.iterations.numpy())
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt(f"simulated crash after epoch {self.epoch}")


def _assert_same_weights(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected) > 0
    for got, wanted in zip(actual, expected):
        np.testing.assert_array_equal(got, wanted)


def _fingerprint(tokenised, **changes) -> str:
    arguments = {
        "array_digest": tokenised.array_digest,
        "vocab_size": tokenised.vocab_size,
        "architecture": "embedding_pool",
        "training": TRAINING,
        "seed": SEED,
    } | changes
    return training_fingerprint(**arguments)


def test_fingerprint_is_stable_and_names_every_input_of_a_training(tokenised):
    base = _fingerprint(tokenised)
    assert base == _fingerprint(tokenised)
    assert len(base) == 16 and int(base, 16) >= 0
    different = {
        _fingerprint(tokenised, array_digest="0" * 64),
        _fingerprint(tokenised, vocab_size=tokenised.vocab_size + 1),
        _fingerprint(tokenised, architecture="lstm"),
        _fingerprint(tokenised, seed=SEED + 1),
        _fingerprint(tokenised, training=dataclasses.replace(TRAINING, epochs=6)),
        _fingerprint(tokenised, training=dataclasses.replace(TRAINING, learning_rate=0.001)),
        _fingerprint(tokenised, training=dataclasses.replace(TRAINING, early_stopping_patience=None)),
    }
    assert base not in different and len(different) == 7
    # Which other architectures the run trains, and the checkpoint switch itself, do not change this training.
    assert _fingerprint(tokenised, training=dataclasses.replace(TRAINING, architectures=("lstm", "bilstm"))) == base
    assert _fingerprint(tokenised, training=dataclasses.replace(TRAINING, checkpoint=False)) == base
    # Another architecture's override does not either; this one's override is the same as setting the field.
    from seqflow.sentiment.config import ArchitectureOverride

    others = (ArchitectureOverride("lstm", learning_rate=0.5),)
    assert _fingerprint(tokenised, training=dataclasses.replace(TRAINING, per_architecture=others)) == base
    own = (ArchitectureOverride("embedding_pool", learning_rate=0.001),)
    assert _fingerprint(tokenised, training=dataclasses.replace(TRAINING, per_architecture=own)) == _fingerprint(
        tokenised, training=dataclasses.replace(TRAINING, learning_rate=0.001)
    )


@contextlib.contextmanager
def fit_watched_by(watcher: keras.callbacks.Callback | None) -> Iterator[None]:
    """Inside: every ``keras.Model.fit`` also calls ``watcher`` (after the training's own callbacks, which it
    gets as ``watcher.fit_callbacks``). The training functions take no extra callbacks, so it goes in here."""
    original_fit = keras.Model.fit

    def fit_watched(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if watcher is not None:
            watcher.fit_callbacks = list(kwargs["callbacks"])
            kwargs["callbacks"] = [*kwargs["callbacks"], watcher]
        return original_fit(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", fit_watched)
        yield


def _train(tokenised, tmp_path: Path, checkpoint_dir: Path | None, watcher=None, logged=None):
    """train_classifier with ``watcher`` (a Keras callback) added to fit's callbacks; a crash propagates."""

    def log(epoch: int, logs: dict[str, float]) -> None:
        if logged is not None:
            logged.append((epoch, logs["val_loss"]))

    with fit_watched_by(watcher):
        return train_classifier(
            "embedding_pool", load_arrays(tokenised), tokenised.vocab_size, TRAINING, SEED, tmp_path / "out", log,
            checkpoint_dir=checkpoint_dir,
        )


def _crash(tokenised, tmp_path: Path, checkpoint_dir: Path, after_epoch: int, logged=None) -> CrashAfterEpoch:
    crash = CrashAfterEpoch(after_epoch)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _train(tokenised, tmp_path, checkpoint_dir, crash, logged)
    return crash


def test_interrupted_training_resumes_after_its_last_completed_epoch(tokenised, tmp_path):
    checkpoint_dir = checkpoint_dir_for(tmp_path / "artifacts", _fingerprint(tokenised))
    first_attempt: list[tuple[int, float]] = []
    crash = _crash(tokenised, tmp_path, checkpoint_dir, after_epoch=2, logged=first_attempt)
    assert [epoch for epoch, _ in first_attempt] == [1, 2]
    state = json.loads((checkpoint_dir / STATE_FILE).read_text())
    assert [record["epoch"] for record in state["epochs"]] == [1, 2]
    assert (checkpoint_dir / state["weights_file"]).is_file() and (checkpoint_dir / OWNER_FILE).is_file()

    second_attempt: list[tuple[int, float]] = []
    resumed = StartingWeights()
    outcome = _train(tokenised, tmp_path, checkpoint_dir, resumed, logged=second_attempt)
    assert outcome.resumed_from_epoch == 2
    # Keras ran epochs 3..5 only, starting from exactly the weights the killed attempt had after epoch 2.
    assert resumed.epochs_begun == [3, 4]
    _assert_same_weights(resumed.weights, crash.last_weights)
    # ... and the optimizer's state (Adam's step count; its moments are saved in the same file).
    assert resumed.optimizer_steps == crash.optimizer_steps > 0
    # The full history: the two epochs of the killed attempt, then the two trained now.
    assert outcome.epochs_run == 4
    assert len(outcome.history["loss"]) == len(outcome.history["val_loss"]) == 4
    assert outcome.history["val_loss"][:2] == [value for _, value in first_attempt]
    # The tracking callback hears of every epoch in order, the resumed ones first and unchanged.
    assert [epoch for epoch, _ in second_attempt] == [1, 2, 3, 4]
    assert second_attempt[:2] == first_attempt
    assert outcome.seconds > 0
    # Done: the checkpoint is gone and the model is saved.
    assert not checkpoint_dir.exists()
    assert outcome.classifier_path.is_file()


def test_early_stopping_state_survives_the_interruption(tokenised, tmp_path):
    checkpoint_dir = checkpoint_dir_for(tmp_path / "artifacts", _fingerprint(tokenised))
    crash = _crash(tokenised, tmp_path, checkpoint_dir, after_epoch=3)
    state = json.loads((checkpoint_dir / STATE_FILE).read_text())
    saved = state["epochs"][-1]["early_stopping"]
    val_losses = [record["logs"]["val_loss"] for record in state["epochs"]]
    assert saved["best"] == pytest.approx(min(val_losses))
    assert saved["best_epoch"] == int(np.argmin(val_losses))
    assert saved["wait"] == 2 - saved["best_epoch"]
    assert state["best_weights_file"] == f"best-epoch-{saved['best_epoch'] + 1:04d}.npz"
    # Only the files of the last completed epoch are kept.
    assert sorted(path.name for path in checkpoint_dir.iterdir()) == sorted(
        {OWNER_FILE, STATE_FILE, state["weights_file"], state["best_weights_file"]}
    )

    resumed = StartingWeights()
    outcome = _train(tokenised, tmp_path, checkpoint_dir, resumed)
    # Patience and the best epoch carry on where the killed attempt stopped counting, with its best weights.
    restored = resumed.early_stopping_state
    assert (restored["wait"], restored["best"], restored["best_epoch"]) == (
        saved["wait"], pytest.approx(saved["best"]), saved["best_epoch"]
    )
    _assert_same_weights(restored["best_weights"], crash.epoch_weights[saved["best_epoch"]])
    assert resumed.epochs_begun == [4] and outcome.epochs_run == 4


def test_training_that_early_stopping_had_ended_is_not_continued(tokenised, tmp_path):
    """Killed after early stopping ended the training but before the model was saved: the resumed training runs
    no further epoch and saves the best epoch's weights."""
    checkpoint_dir = checkpoint_dir_for(tmp_path / "artifacts", _fingerprint(tokenised))
    crash = _crash(tokenised, tmp_path, checkpoint_dir, after_epoch=2)
    state_path = checkpoint_dir / STATE_FILE
    state = json.loads(state_path.read_text())
    state["epochs"][-1]["early_stopping"]["stopped"] = True
    state_path.write_text(json.dumps(state))
    best_epoch = state["epochs"][-1]["early_stopping"]["best_epoch"]

    resumed = StartingWeights()
    outcome = _train(tokenised, tmp_path, checkpoint_dir, resumed)
    assert resumed.epochs_begun == []
    assert outcome.resumed_from_epoch == 2 and outcome.epochs_run == 2 and len(outcome.history["val_loss"]) == 2
    _assert_same_weights(keras.saving.load_model(outcome.classifier_path).get_weights(), crash.epoch_weights[best_epoch])


def test_unusable_checkpoint_is_discarded_and_training_starts_fresh(tokenised, tmp_path):
    checkpoint_dir = checkpoint_dir_for(tmp_path / "artifacts", _fingerprint(tokenised))
    crash = _crash(tokenised, tmp_path, checkpoint_dir, after_epoch=1)
    state = json.loads((checkpoint_dir / STATE_FILE).read_text())
    (checkpoint_dir / state["weights_file"]).write_bytes(b"not an HDF5 file")
    restarted = StartingWeights()
    outcome = _train(tokenised, tmp_path, checkpoint_dir, restarted)
    assert outcome.resumed_from_epoch == 0 and outcome.epochs_run == 4
    assert restarted.epochs_begun == [1, 2, 3, 4]
    # Starting again means the same initial weights as a training that never had a checkpoint.
    _assert_same_weights(restarted.weights, crash.weights)
    assert not checkpoint_dir.exists()
