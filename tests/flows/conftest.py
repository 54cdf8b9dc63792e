"""Fixtures for flow tests: a temporary MLflow store and small, fast pipeline configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqflow.config import get_profile, with_overrides
from seqflow.settings import TrackingSettings


@pytest.fixture
def tracking_settings(tmp_path: Path) -> TrackingSettings:
    """A fresh SQLite tracking store and registry in the test's folder."""
    return TrackingSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment_name="seqflow-test",
        registered_model_name="seqflow-test-sentiment",
        artifact_location=(tmp_path / "mlartifacts").as_uri(),
    )


@pytest.fixture
def tiny_overrides(tmp_path: Path, short_reviews_csv: Path) -> dict[str, str]:
    """``section.field`` overrides of the quick profile for 400 short real reviews, two architectures."""
    return {
        "data.source": f"csv:{short_reviews_csv}",
        "artifacts_dir": str(tmp_path / "artifacts"),
        "tokenisation.vocab_size": "3000",
        "tokenisation.max_length": "64",
        # 280 training reviews cannot cover the vocabulary of the other splits.
        "contracts.max_oov_rate": "0.35",
        "contracts.max_all_padding_rows": "0.02",
        "training.architectures": "embedding_pool,lstm",
        "training.epochs": "2",
        "training.batch_size": "32",
        "training.learning_rate": "0.005",
        "training.embedding_dim": "16",
        "training.rnn_units": "16",
        "training.dense_units": "16",
        "promotion.accuracy_floor": "0.0",
    }


@pytest.fixture
def tiny_config(tiny_overrides: dict[str, str]):
    """400 short real reviews, 64 ids per review, two architectures, two epochs."""

    def make(**overrides: str):
        return with_overrides(get_profile("quick"), {**tiny_overrides, **overrides})

    return make
