"""Crash recovery of `seqflow run`, with real processes: kill -9 during training and run again; SIGTERM.

Each test starts `seqflow run` as a child process against the session's Prefect server and a SQLite MLflow
store in tmp_path, waits until training is under way (read from the MLflow store, where every epoch lands
after its checkpoint is saved), then kills or terminates it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from seqflow.core.processes import current_host
from seqflow.sentiment.steps import RESUMED_FROM_EPOCH_TAG
from seqflow.core.tracking import CHAMPION_ALIAS, CLOSED_REASON_TAG, ROLE_TAG

pytestmark = pytest.mark.slow

EXPERIMENT = "crash-recovery"
MODEL_NAME = "crash-recovery-model"
EPOCHS = 6
# Longest wait for the child to reach a given epoch, or to finish (it imports TensorFlow, checks contracts...).
WAIT_S = 600
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.fixture
def reviews_csv(tmp_path: Path, embedded_reviews: pd.DataFrame) -> Path:
    """1,200 real reviews of at most 600 characters: an LSTM epoch takes about a second, long enough to kill
    the process between two epochs."""
    short = embedded_reviews[embedded_reviews["text"].str.len() <= 600]
    path = tmp_path / "reviews.csv"
    short.groupby("label", group_keys=False).head(600).reset_index(drop=True).to_csv(path, index=False)
    return path


@pytest.fixture
def command(prefect_api, tmp_path: Path, reviews_csv: Path, tiny_overrides) -> tuple[list[str], dict[str, str]]:
    """`seqflow run` of the tiny flow settings (embedding_pool, then lstm) on ``reviews_csv``, and the
    environment to run it in."""
    from prefect.settings import PREFECT_API_URL

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env_file = tmp_path / "crash.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={tracking_uri}\nMLFLOW_EXPERIMENT_NAME={EXPERIMENT}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={MODEL_NAME}\nSEQFLOW_ARTIFACT_LOCATION={(tmp_path / 'mlartifacts').as_uri()}\n"
    )
    settings = tiny_overrides | {
        "data.source": f"csv:{reviews_csv}",
        "training.epochs": str(EPOCHS),
        # Every epoch runs: the epoch counts below are exact.
        "training.early_stopping_patience": "10",
        "training.batch_size": "16",
    }
    assert settings["training.architectures"] == "embedding_pool,lstm"
    argv = [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "run"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    environment |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return argv, environment


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _runs(client: MlflowClient):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


def _start(command, tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    argv, environment = command
    stderr_path = tmp_path / f"{name}.stderr"
    with open(tmp_path / f"{name}.stdout", "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(argv, cwd=tmp_path, env=environment, stdout=stdout, stderr=stderr)
    return process, stderr_path


def _wait_for_epoch(client: MlflowClient, process: subprocess.Popen, stderr_path: Path, architecture: str, epoch: int):
    """Wait until ``architecture``'s RUNNING child run has logged ``epoch`` epochs; returns that run."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"seqflow run ended early ({process.returncode}): {stderr_path.read_text()[-3000:]}")
        try:
            for run in _runs(client):
                if run.info.run_name == architecture and run.info.status == "RUNNING":
                    if len(client.get_metric_history(run.info.run_id, "val_loss")) >= epoch:
                        return run
        except Exception:  # noqa: BLE001 - the child may be creating the store's tables right now
            pass
        time.sleep(0.3)
    process.kill()
    pytest.fail(f"{architecture} did not reach epoch {epoch} in {WAIT_S} s: {stderr_path.read_text()[-3000:]}")


def test_kill_9_during_training_then_run_again(command, client, tmp_path):
    first, stderr_path = _start(command, tmp_path, "first")
    interrupted = _wait_for_epoch(client, first, stderr_path, "lstm", epoch=1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL

    dead_runs = {run.info.run_id: run for run in _runs(client)}
    # Nothing could clean up: the parent run and the interrupted child run are RUNNING.
    by_name = {run.info.run_name: run.info.status for run in dead_runs.values()}
    assert by_name.pop("embedding_pool") == "FINISHED" and by_name.pop("lstm") == "RUNNING"
    assert list(by_name.values()) == ["RUNNING"]  # the parent run
    assert client.search_model_versions(f"name = '{MODEL_NAME}'") == []
    epochs_done = len(client.get_metric_history(interrupted.info.run_id, "val_loss"))
    assert 1 <= epochs_done < EPOCHS

    second, stderr_path = _start(command, tmp_path, "second")
    assert second.wait(timeout=WAIT_S) == 0, stderr_path.read_text()[-3000:]
    assert "Traceback" not in stderr_path.read_text()

    runs = {run.info.run_id: run for run in _runs(client)}
    for run_id, dead in dead_runs.items():
        if dead.info.status == "RUNNING":
            closed = runs[run_id]
            assert closed.info.status == "KILLED"
            assert closed.data.tags[CLOSED_REASON_TAG] == f"owner process {first.pid} on {current_host()} is gone"
    new_runs = [run for run_id, run in runs.items() if run_id not in dead_runs]
    # A new parent and a new lstm run; the architecture that had finished is reused from the task cache.
    assert {run.info.status for run in new_runs} == {"FINISHED"} and len(new_runs) == 2
    assert sorted(run.info.run_name for run in new_runs if run.data.tags[ROLE_TAG] != "pipeline") == ["lstm"]
    new_parent = next(run for run in new_runs if run.data.tags[ROLE_TAG] == "pipeline")
    finished_before = next(run_id for run_id, run in dead_runs.items() if run.info.run_name == "embedding_pool")
    assert finished_before in new_parent.data.tags["seqflow.reused_runs"]
    resumed = next(run for run in new_runs if run.info.run_name == "lstm")
    # The interrupted training went on from the last epoch its checkpoint had (at least the one seen logged).
    resumed_from = int(resumed.data.metrics[RESUMED_FROM_EPOCH_TAG])
    assert epochs_done <= resumed_from < EPOCHS
    for key in METRICS:
        history = client.get_metric_history(resumed.info.run_id, key)
        assert sorted(point.step for point in history) == list(range(1, EPOCHS + 1)), key
    # The epochs taken over carry the killed run's values.
    killed_curve = {point.step: point.value for point in client.get_metric_history(interrupted.info.run_id, "val_loss")}
    resumed_curve = {point.step: point.value for point in client.get_metric_history(resumed.info.run_id, "val_loss")}
    assert all(resumed_curve[step] == pytest.approx(value) for step, value in killed_curve.items() if step <= resumed_from)
    assert not any((tmp_path / "artifacts" / "checkpoints").iterdir())

    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert len(versions) == 2
    for version in versions:
        assert client.get_run(version.run_id).info.status == "FINISHED"
        assert version.tags["parent_run_id"] == new_parent.info.run_id
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    assert champion.version in {version.version for version in versions}


def test_sigterm_ends_runs_killed_at_once_without_traceback(command, client, tmp_path):
    process, stderr_path = _start(command, tmp_path, "terminated")
    _wait_for_epoch(client, process, stderr_path, "lstm", epoch=1)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    seconds_to_exit = time.monotonic() - signalled

    stderr = stderr_path.read_text()
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "seqflow: stopped by SIGTERM; open MLflow runs are marked KILLED"
    status = {(run.data.tags[ROLE_TAG], run.info.run_name): run.info.status for run in _runs(client)}
    parent = next(key for key in status if key[0] == "pipeline")
    # The finished architecture stays FINISHED; the one in training and the parent run end KILLED.
    assert status == {
        parent: "KILLED", ("architecture", "embedding_pool"): "FINISHED", ("architecture", "lstm"): "KILLED"
    }
    assert client.search_model_versions(f"name = '{MODEL_NAME}'") == []
    # No waiting for the remaining epochs or a timeout: the process unwinds and exits.
    assert seconds_to_exit < 60
