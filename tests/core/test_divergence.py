"""Issue 23 item 7 (training loop): a training whose loss becomes NaN or infinite stops at once with one line
naming the setting to lower, and leaves no model behind, in both pipelines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from seqflow.charlm.config import CharSamplingConfig, CharTrainingConfig
from seqflow.sentiment.profiles import get_profile
from seqflow.core.divergence import LEARNING_RATE_SETTING, TrainingDiverged

DIVERGING_LEARNING_RATE = 1e30


def _toy_reviews(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 2, rows)
    ids = np.where(labels[:, None] == 1, rng.integers(10, 18, (rows, 12)), rng.integers(2, 10, (rows, 12)))
    return ids.astype("int32"), labels.astype("int32")


@pytest.mark.parametrize("architecture", ["embedding_pool", "lstm"])
def test_sentiment_training_stops_at_a_non_finite_loss_and_saves_nothing(architecture: str, tmp_path: Path) -> None:
    from seqflow.sentiment.train import train_classifier

    rng = np.random.default_rng(0)
    x_train, y_train = _toy_reviews(rng, 256)
    x_val, y_val = _toy_reviews(rng, 64)
    arrays = {"x_train": x_train, "y_train": y_train, "x_validation": x_val, "y_validation": y_val}
    # The quick profile's own training settings (clipping, schedule, optimizer), only far too fast.
    training = dataclasses.replace(
        get_profile("quick").training, architectures=(architecture,), epochs=3, batch_size=32, embedding_dim=8,
        rnn_units=8, dense_units=8, learning_rate=DIVERGING_LEARNING_RATE, per_architecture=(),
    )
    epochs_seen: list[int] = []
    with pytest.raises(TrainingDiverged) as diverged:
        train_classifier(architecture, arrays, 18, training, seed=1, output_dir=tmp_path / "out",
                         on_epoch_end=lambda epoch, logs: epochs_seen.append(epoch), checkpoint_dir=tmp_path / "ckpt")
    message = str(diverged.value)
    assert LEARNING_RATE_SETTING in message and architecture in message and "1e+30" in message
    assert "\n" not in message
    assert not list((tmp_path / "out").glob("*.keras")) if (tmp_path / "out").exists() else True
    # The diverged epoch never reached tracking.
    assert epochs_seen == []


def test_character_training_stops_at_a_non_finite_loss_and_saves_nothing(tmp_path: Path) -> None:
    from seqflow.charlm.train import train_char_model

    vocabulary = ["\ufffd", "\n", " ", "a", "b", "c", "d", "e"]
    rng = np.random.default_rng(0)
    ids = rng.integers(1, len(vocabulary), 4000).astype(np.int32)
    training = CharTrainingConfig(
        rnn_units=16, embedding_dim=8, seq_length=20, batch_size=16, epochs=3, learning_rate=DIVERGING_LEARNING_RATE,
        early_stopping_patience=None, validation_streams=2, validation_window=50,
    )
    sampling = CharSamplingConfig(every_epochs=1, length=10, temperatures=(1.0,))
    epochs_seen: list[int] = []
    with pytest.raises(TrainingDiverged) as diverged:
        train_char_model(
            "char_gru", ids, ids[:600], vocabulary, training, sampling, "ab", 7, tmp_path / "out",
            on_epoch_end=lambda epoch, metrics: epochs_seen.append(epoch),
        )
    assert LEARNING_RATE_SETTING in str(diverged.value) and "char_gru" in str(diverged.value)
    assert not (tmp_path / "out").exists()
    assert epochs_seen == []


@pytest.mark.slow
def test_diverged_execution_ends_every_run_and_registers_nothing(prefect_api, short_reviews_csv: Path, tmp_path: Path) -> None:
    """``seqflow run --set training.learning_rate=1e30``: the execution fails with the one-line error (not
    scikit-learn's "Input contains NaN" from evaluation), leaves no run RUNNING and registers no version."""
    from mlflow import MlflowClient

    from seqflow.flows.sentiment import sentiment_flow
    from tests.flows.conftest import tiny_config_maker, tracking_settings_for

    settings = tracking_settings_for(tmp_path)
    config = tiny_config_maker(tmp_path, short_reviews_csv)(**{"training.learning_rate": "1e30"})
    with pytest.raises(TrainingDiverged, match=LEARNING_RATE_SETTING):
        sentiment_flow(config, settings)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    statuses = {run.info.status for run in client.search_runs([experiment.experiment_id])}
    assert statuses and "RUNNING" not in statuses, statuses
    assert client.search_model_versions(f"name='{settings.registered_model_name}'") == []
