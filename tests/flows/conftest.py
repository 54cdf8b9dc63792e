"""Fixtures for flow tests: a temporary MLflow store and small, fast pipeline configs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from seqflow.sentiment.config import with_overrides
from seqflow.sentiment.profiles import get_profile
from seqflow.core.settings import TrackingSettings
from tests.conftest import new_empty_store


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
    new_empty_store(base_dir / "mlflow.db")
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


def copy_of_store(settings: TrackingSettings, folder: Path) -> TrackingSettings:
    """``settings`` on a copy of its SQLite store in ``folder``: tests that add runs or versions to a store
    shared by their module work on a copy, so every test of the module sees the same store. Artifact URIs in the
    copy still point at the original's artifacts, which such tests only read."""
    store_path = Path(settings.tracking_uri.removeprefix("sqlite:///"))
    copy_path = folder / store_path.name
    shutil.copyfile(store_path, copy_path)
    return settings.model_copy(update={"tracking_uri": f"sqlite:///{copy_path}"})


def tiny_config_maker(base_dir: Path, reviews_csv: Path) -> Callable[..., object]:
    """``make(**overrides)``: the tiny config (see :func:`tiny_overrides_for`) with ``overrides`` on top."""

    def make(**overrides: str):
        return with_overrides(get_profile("quick"), {**tiny_overrides_for(base_dir, reviews_csv), **overrides})

    return make


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory) -> Path:
    """One folder per test module, for a flow execution its tests share (training is the slow part)."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def shared_settings(shared_folder: Path) -> TrackingSettings:
    """The module's SQLite tracking store and registry."""
    return tracking_settings_for(shared_folder)


@pytest.fixture(scope="module")
def shared_config(shared_folder: Path, short_reviews):
    """The tiny config of :func:`tiny_config`, in the module's folder; ``make(**overrides)`` varies it."""
    reviews_csv = shared_folder / "short_reviews.csv"
    short_reviews.to_csv(reviews_csv, index=False)
    return tiny_config_maker(shared_folder, reviews_csv)


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


def one_execution(client, experiment_name: str, parent_role: str, child_role: str):  # noqa: ANN001, ANN201
    """The experiment's one parent run (of ``parent_role``) and its child runs (of ``child_role``), after checking
    that every run finished and each child names the parent and its data."""
    from seqflow.core.runs import ROLE_TAG

    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get(ROLE_TAG) == parent_role]
    children = [run for run in runs if run.data.tags.get(ROLE_TAG) == child_role]
    assert len(parents) == 1 and len(children) == 2
    assert {run.info.status for run in runs} == {"FINISHED"}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.tags["dataset_digest"] == parents[0].data.tags["dataset_digest"]
    return parents[0], children


def crashing_on(train: Callable, architecture: str) -> Callable:
    """``train`` (a training function taking the architecture first) raising for ``architecture``: a crash in the
    middle of an execution."""

    def train_or_crash(trained_architecture, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if trained_architecture == architecture:
            raise RuntimeError(f"simulated crash while training {architecture}")
        return train(trained_architecture, *args, **kwargs)

    return train_or_crash
