"""`seqflow tune` end to end with real processes: a tiny search (400 short reviews, 4 trials, 2 epochs) is killed
with -9 while a trial is in flight, then the same command resumes it to completion. Nothing is left RUNNING, in
MLflow or in the study, and the best trial's profile file is one `seqflow run --profile FILE` accepts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from seqflow.core.runs import CLOSED_REASON_TAG, ROLE_TAG
from seqflow.core.tuning import STUDY_TAG, TRIAL_STATE_TAG
from seqflow.sentiment.profiles import get_profile
from tests.flows.conftest import tracking_settings_for, write_env_file

pytestmark = pytest.mark.slow

TRIALS = 4
WAIT_S = 600
STUDY = "ci-tiny"
SPACE = """\
training.learning_rate: {type: float, low: 0.001, high: 0.02, log: true}
training.dropout: {type: float, low: 0.0, high: 0.5}
training.embedding_dim: {type: categorical, choices: [8, 16]}
"""


@pytest.fixture
def command(prefect_api, tmp_path: Path, tiny_overrides) -> tuple[list[str], dict[str, str]]:
    from prefect.settings import PREFECT_API_URL

    settings = tracking_settings_for(tmp_path)
    env_file = write_env_file(settings, tmp_path / "tune.env")
    (tmp_path / "space.yaml").write_text(SPACE)
    argv = [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "tune", "--arch", "embedding_pool",
            "--trials", str(TRIALS), "--space", str(tmp_path / "space.yaml"), "--study", STUDY,
            "--profile-output", str(tmp_path / "best.yaml")]
    for key, value in tiny_overrides.items():
        if key != "training.architectures":
            argv += ["--set", f"{key}={value}"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    environment |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return argv, environment


def _trial_runs(client: MlflowClient):
    experiment = client.get_experiment_by_name("seqflow-test")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{STUDY}'", max_results=1000)


def test_a_search_killed_with_9_resumes_to_completion(command, tmp_path: Path):
    argv, environment = command
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    stderr_path = tmp_path / "first.stderr"
    with open(stderr_path, "wb") as stderr:
        first = subprocess.Popen(argv, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
    # Kill as soon as the second trial's run exists: the first trial was told to the study, the second is in flight.
    deadline = time.monotonic() + WAIT_S
    while True:
        if first.poll() is not None:
            pytest.fail(f"the search ended early ({first.returncode}): {stderr_path.read_text()[-3000:]}")
        assert time.monotonic() < deadline, stderr_path.read_text()[-3000:]
        try:
            runs = {run.info.run_name: run.info.status for run in _trial_runs(client)}
        except Exception:  # noqa: BLE001 - the child may be creating the store's tables right now
            runs = {}
        if runs.get("trial-001") == "RUNNING":
            break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    in_flight = [t.number for t in optuna.load_study(study_name=STUDY, storage=storage).trials if t.state == TrialState.RUNNING]
    assert in_flight == [1]

    second = subprocess.run(argv, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=WAIT_S)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert f"study {STUDY}: {TRIALS} trial(s) completed or pruned" in second.stdout

    study = optuna.load_study(study_name=STUDY, storage=storage)
    states = {t.number: t.state for t in study.trials}
    # The trial in flight was lost (FAIL, its process gone); four others completed or were pruned.
    assert states[1] == TrialState.FAIL and "is gone" in study.trials[1].user_attrs["seqflow.failed_reason"]
    assert sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states.values()) == TRIALS
    assert TrialState.RUNNING not in states.values()
    assert len({t.number for t in study.trials}) == len(study.trials)

    runs = _trial_runs(client)
    assert [run.info.run_name for run in runs if run.info.status == "RUNNING"] == []
    killed = [run for run in runs if run.info.status == "KILLED"]
    # The first session's parent run and the trial in flight, closed by the resumed search.
    assert sorted(run.info.run_name.split("-2")[0] for run in killed) == ["trial-001", "tune-embedding_pool"]
    assert all("is gone" in run.data.tags[CLOSED_REASON_TAG] for run in killed)
    parents = [run for run in runs if run.data.tags[ROLE_TAG] == "search"]
    assert len(parents) == 2
    finished = {run.data.tags["trial_number"]: run.data.tags[TRIAL_STATE_TAG] for run in runs
                if run.data.tags[ROLE_TAG] == "trial" and run.info.status == "FINISHED"}
    assert sorted(finished.values()) == sorted(state.name for n, state in states.items() if n != 1)
    resumed = next(run for run in parents if run.info.status == "FINISHED")
    assert {a.path for a in client.list_artifacts(resumed.info.run_id, "plots")} >= {"plots/optimisation_history.png"}

    tuned = get_profile(str(tmp_path / "best.yaml"))
    best = study.best_trial
    assert tuned.training.architectures == ("embedding_pool",) and tuned.data.source.startswith("csv:")
    assert tuned.training.for_architecture("embedding_pool").learning_rate == best.params["training.learning_rate"]
