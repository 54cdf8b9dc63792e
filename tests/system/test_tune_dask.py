"""`seqflow tune --runner dask`: trials fan out on a local 2-worker Dask cluster, in parallel, sharing one study
(no trial number twice), each a nested MLflow run under the search's parent run."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from seqflow.core.config import ExecutionConfig
from seqflow.core.runs import ROLE_TAG
from seqflow.core.search_runs import TuneRequest
from seqflow.core.search_space import parse_space, space_to_plain

# Extended (SEQFLOW_EXTENDED_TESTS=1): the two-worker cluster with TensorFlow in each worker costs CI minutes it does
# not have; the kill/resume search (tests/flows/test_tune.py) runs in CI.
pytestmark = [pytest.mark.slow, pytest.mark.extended]

TRIALS = 2


def _training_interval(client: MlflowClient, run) -> tuple[int, int]:  # noqa: ANN001
    """From the trial run's creation to its last per-epoch metric, in ms."""
    last_epoch = max(point.timestamp for point in client.get_metric_history(run.info.run_id, "val_loss"))
    return run.info.start_time, last_epoch


def test_two_dask_workers_run_trials_of_one_study_in_parallel(prefect_api, tiny_config, tracking_settings, tmp_path: Path):
    from seqflow.flows.tune import run_tune_flow

    config = tiny_config(**{"training.epochs": "2"})
    space = parse_space({"training.learning_rate": {"type": "float", "low": 0.001, "high": 0.02, "log": True},
                         "training.embedding_dim": {"type": "categorical", "choices": [8, 16]}}, "test space")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    request = TuneRequest(
        architecture="embedding_pool", study_name="dask", storage_url=storage, space=space_to_plain(space),
        trials=TRIALS, timeout_minutes=None, pruner="none", parallel=2, profile_path=str(tmp_path / "best.yaml"),
    )
    summary = run_tune_flow(config, tracking_settings, request, ExecutionConfig(runner="dask", workers=2, tf_threads=1))

    study = optuna.load_study(study_name="dask", storage=storage)
    assert [summary.study_name] == [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert sorted(t.number for t in study.trials) == list(range(TRIALS))
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}

    client = MlflowClient(tracking_settings.tracking_uri)
    experiment = client.get_experiment_by_name(tracking_settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [run for run in runs if run.data.tags.get(ROLE_TAG) == "search"]
    trials = [run for run in runs if run.data.tags.get(ROLE_TAG) == "trial"]
    assert sorted(run.data.tags["trial_number"] for run in trials) == [str(n) for n in range(TRIALS)]
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in trials)
    # The two trials trained at the same time, on two worker processes.
    (start_a, end_a), (start_b, end_b) = (_training_interval(client, run) for run in trials)
    assert max(start_a, start_b) < min(end_a, end_b), (start_a, end_a, start_b, end_b)
    assert len({run.data.tags["seqflow.pid"] for run in trials}) == 2
