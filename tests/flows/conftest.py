"""Fixtures for flow tests: a temporary MLflow store and small, fast pipeline configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqflow.config import get_profile, with_overrides
from seqflow.settings import TrackingSettings


@pytest.fixture
def tracking_settings(tmp_path: Path) -> TrackingSettings:
    """A fresh SQLite tracking store and registry in the test's folder."""
    return tracking_settings_for(tmp_path)


def tiny_overrides_for(base_dir: Path, reviews_csv: Path) -> dict[str, str]:
    """``section.field`` overrides of the quick profile for 400 short real reviews, two architectures."""
    return {
        "data.source": f"csv:{reviews_csv}",
        "artifacts_dir": str(base_dir / "artifacts"),
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


def tracking_settings_for(base_dir: Path) -> TrackingSettings:
    """A fresh SQLite tracking store and registry in ``base_dir``."""
    return TrackingSettings(
        tracking_uri=f"sqlite:///{base_dir / 'mlflow.db'}",
        experiment_name="seqflow-test",
        registered_model_name="seqflow-test-sentiment",
        artifact_location=(base_dir / "mlartifacts").as_uri(),
    )


def write_env_file(settings: TrackingSettings, path: Path) -> Path:
    """An ``--env-file`` for a seqflow process that uses ``settings``' store."""
    path.write_text(
        f"MLFLOW_TRACKING_URI={settings.tracking_uri}\n"
        f"MLFLOW_EXPERIMENT_NAME={settings.experiment_name}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={settings.registered_model_name}\n"
    )
    return path


@pytest.fixture
def tiny_overrides(tmp_path: Path, short_reviews_csv: Path) -> dict[str, str]:
    """``section.field`` overrides of the quick profile for 400 short real reviews, two architectures."""
    return tiny_overrides_for(tmp_path, short_reviews_csv)


@pytest.fixture
def tiny_config(tiny_overrides: dict[str, str]):
    """400 short real reviews, 64 ids per review, two architectures, two epochs."""

    def make(**overrides: str):
        return with_overrides(get_profile("quick"), {**tiny_overrides, **overrides})

    return make
