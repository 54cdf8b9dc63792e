"""`seqflow run --runner dask`: the runner the flags build, their errors, and a parallel run on a local cluster."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from seqflow.cli import build_parser, resolve_execution
from seqflow.core.config import ExecutionConfig
from seqflow.core.errors import ConfigError
from seqflow.core.execution import InlineTaskRunner, build_task_runner, check_scheduler
from seqflow.core.tracking import CHAMPION_ALIAS, ROLE_TAG


def _runner_for(*flags: str):
    return build_task_runner(resolve_execution(build_parser().parse_args(["run", *flags])))


def test_default_runner_is_sequential_in_process():
    execution = resolve_execution(build_parser().parse_args(["run"]))
    assert execution == ExecutionConfig(runner="sequential")
    assert isinstance(build_task_runner(execution), InlineTaskRunner)


def test_dask_address_builds_a_runner_for_that_scheduler_without_connecting():
    from prefect_dask import DaskTaskRunner

    runner = _runner_for("--runner", "dask", "--dask-address", "tcp://10.1.2.3:8786")
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address == "tcp://10.1.2.3:8786"
    assert runner.cluster_class is None and runner.cluster_kwargs == {}
    assert runner._client is None and runner._cluster is None


def test_workers_build_a_local_cluster_of_that_many_single_threaded_processes(monkeypatch):
    from prefect_dask import DaskTaskRunner

    monkeypatch.setattr("seqflow.core.execution.os.cpu_count", lambda: 8)
    runner = _runner_for("--runner", "dask", "--workers", "3")
    assert isinstance(runner, DaskTaskRunner) and runner.address is None
    assert runner.cluster_class == "distributed.LocalCluster"
    kwargs = runner.cluster_kwargs
    assert (kwargs["n_workers"], kwargs["threads_per_worker"], kwargs["processes"]) == (3, 1, True)
    # 8 cores shared by 3 workers: 2 TensorFlow threads each.
    assert kwargs["env"] == {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"}
    assert runner._cluster is None
    assert _runner_for("--runner", "dask").cluster_kwargs["n_workers"] == 2
    assert _runner_for("--runner", "dask", "--tf-threads", "1").cluster_kwargs["env"]["TF_NUM_INTRAOP_THREADS"] == "1"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dask-address", "tcp://127.0.0.1:8786"], "--dask-address given without --runner dask"),
        (["--workers", "3", "--tf-threads", "1"], "--workers and --tf-threads given without --runner dask"),
        (["--runner", "dask", "--workers", "0"], "--workers must be at least 1"),
        (["--runner", "dask", "--dask-address", "tcp://127.0.0.1:8786", "--tf-threads", "2"], "has its own workers"),
    ],
)
def test_inconsistent_runner_flags_are_rejected(flags, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_execution(build_parser().parse_args(["run", *flags]))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_reachable_scheduler_passes_the_check():
    import distributed

    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        check_scheduler(cluster.scheduler_address, timeout_s=10)


def test_unreachable_scheduler_is_a_config_error():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError, match=f"cannot reach the Dask scheduler at '{re.escape(address)}'"):
        check_scheduler(address, timeout_s=2)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dask-address", "tcp://127.0.0.1:8786"], "--dask-address given without --runner dask"),
        (["--runner", "dask", "--dask-address", "tcp://127.0.0.1:{port}"], "cannot reach the Dask scheduler"),
    ],
)
def test_cli_runner_errors_are_one_message_without_traceback(flags, message, tmp_path):
    port = _closed_port()
    env_file = tmp_path / "test.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'mlflow.db'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "run", *(f.format(port=port) for f in flags)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    # Rejected before any data was loaded or any run was opened.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "seqflow_artifacts").exists()


def _training_interval(client: MlflowClient, run) -> tuple[int, int]:
    """From the run's creation (training starts right after) to its last per-epoch metric, in ms."""
    last_epoch = max(point.timestamp for point in client.get_metric_history(run.info.run_id, "val_loss"))
    return run.info.start_time, last_epoch


@pytest.mark.slow
def test_local_dask_cluster_trains_in_parallel_and_tracks_everything(prefect_api, tiny_config, tracking_settings):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    from seqflow.flows.sentiment import run_sentiment_flow

    config = tiny_config(**{"training.epochs": "3"})
    summary = run_sentiment_flow(config, tracking_settings, ExecutionConfig(runner="dask", workers=2))

    client = MlflowClient(tracking_settings.tracking_uri)
    experiment = client.get_experiment_by_name(tracking_settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get(ROLE_TAG) == "pipeline"]
    children = {run.data.tags["architecture"]: run for run in runs if run.data.tags.get(ROLE_TAG) == "architecture"}
    assert len(parents) == 1 and sorted(children) == ["embedding_pool", "lstm"]
    assert {run.info.status for run in runs} == {"FINISHED"}
    flow_run_id = parents[0].data.tags["seqflow.prefect_flow_run_id"]
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        # Tagged on the worker with the flow run it belongs to: the Prefect context travelled with the task.
        assert child.data.tags["seqflow.prefect_flow_run_id"] == flow_run_id
        assert [p.step for p in client.get_metric_history(child.info.run_id, "val_loss")] == [1, 2, 3]
        assert "test_accuracy" in child.data.metrics

    # The two trainings overlapped in time.
    (start_a, end_a), (start_b, end_b) = (_training_interval(client, run) for run in children.values())
    assert max(start_a, start_b) < min(end_a, end_b), (start_a, end_a, start_b, end_b)

    versions = client.search_model_versions(f"name='{tracking_settings.registered_model_name}'")
    assert sorted(version.tags["architecture"] for version in versions) == ["embedding_pool", "lstm"]
    assert {version.run_id for version in versions} == {run.info.run_id for run in children.values()}
    champion = client.get_model_version_by_alias(tracking_settings.registered_model_name, CHAMPION_ALIAS)
    best = max(summary.rows, key=lambda row: row.test_accuracy)
    assert champion.tags["architecture"] == best.architecture and summary.champion_version == str(champion.version)
    assert [row.architecture for row in summary.rows] == ["embedding_pool", "lstm"]

    # The workers reported their task runs to the flow's Prefect API.
    with get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            # Prefect 3.8's client sends limit/sort as null unless given, which its own server rejects (422).
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )
    finished = {run.name: run for run in task_runs if run.state and run.state.is_completed()}
    assert {"train-embedding_pool", "train-lstm", "evaluate-embedding_pool", "evaluate-lstm"} <= set(finished)
    first, second = finished["train-embedding_pool"], finished["train-lstm"]
    assert max(first.start_time, second.start_time) < min(first.end_time, second.end_time)
