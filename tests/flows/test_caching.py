"""Caching that explains itself: a repeated `seqflow run` reuses every finished task and says why; changed
settings, code or outputs rerun exactly the tasks they reach. Real MLflow store, the session's Prefect server."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from seqflow.core.tracking import FLOW_RUN_TAG, ROLE_TAG

CACHED_TASKS = [
    "download", "contracts-raw", "tokenise", "contracts-tokenised",
    "train-embedding_pool", "train-lstm", "evaluate-embedding_pool", "evaluate-lstm", "register",
]


def _statuses(summary) -> dict[str, tuple[str, str]]:
    return {status.task: (status.status, status.reason) for status in summary.tasks}


def _parents(client: MlflowClient, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [run for run in runs if run.data.tags.get(ROLE_TAG) == "pipeline"], [
        run for run in runs if run.data.tags.get(ROLE_TAG) == "architecture"
    ]


def _prefect_state_names(flow_run_id: str) -> dict[str, str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200, offset=0
        )
    return {task_run.name: task_run.state.name for task_run in task_runs}


@pytest.mark.slow
def test_second_run_reuses_every_task_and_changes_rerun_only_what_they_reach(prefect_api, tiny_config, tracking_settings):
    from seqflow.flows.sentiment import sentiment_flow

    client = MlflowClient(tracking_settings.tracking_uri)
    config = tiny_config()
    first = sentiment_flow(config, tracking_settings)
    assert list(_statuses(first)) == CACHED_TASKS
    assert {status for status, _ in _statuses(first).values()} == {"ran"}
    assert _statuses(first)["download"][1] == "no earlier result"

    # How much faster this is, is measured by benchmarks/pipeline_benchmark.py --twice, not here.
    second = sentiment_flow(config, tracking_settings)
    parents, children = _parents(client, tracking_settings.experiment_name)
    first_flow_run = parents[0].data.tags[FLOW_RUN_TAG]
    statuses = _statuses(second)
    assert list(statuses) == CACHED_TASKS
    for task, (status, reason) in statuses.items():
        assert status == "cached", (task, reason)
        assert reason == f"same inputs, config and code as flow run {first_flow_run}"
    # Prefect itself marks the reused task runs Cached; the tracking tasks always run.
    states = _prefect_state_names(parents[1].data.tags[FLOW_RUN_TAG])
    assert {name: state for name, state in states.items() if not name.startswith(("start_", "finish_"))} == {
        name: "Cached" for name in states if not name.startswith(("start_", "finish_"))
    }
    assert len([name for name in states if name.startswith(("train-", "evaluate-"))]) == 4

    # A new parent run for the execution, no new child runs, no duplicate registered versions.
    assert len(parents) == 2 and len(children) == 2
    assert {run.info.status for run in parents + children} == {"FINISHED"}
    assert second.parent_run_id == parents[1].info.run_id != first.parent_run_id
    reused = parents[1].data.tags["seqflow.reused_runs"]
    for child in children:
        architecture = child.data.tags["architecture"]
        assert f"train-{architecture}={child.info.run_id}" in reused
        assert f"evaluate-{architecture}={child.info.run_id}" in reused
    assert parents[1].data.tags["seqflow.cached_tasks"] == ",".join(CACHED_TASKS)
    with open(client.download_artifacts(parents[1].info.run_id, "tasks.json")) as handle:
        tasks_json = json.load(handle)
    assert [entry["status"] for entry in tasks_json] == ["cached"] * len(CACHED_TASKS)
    versions = client.search_model_versions(f"name='{tracking_settings.registered_model_name}'")
    assert len(versions) == 2
    assert second.champion_version == first.champion_version
    assert [row.test_accuracy for row in second.rows] == [row.test_accuracy for row in first.rows]
    rendered = second.render()
    assert "tasks:" in rendered and "train-lstm" in rendered and "cached" in rendered

    # A deleted MLflow run is not reused: only that architecture trains again, in a new child run.
    lstm_run = next(child.info.run_id for child in children if child.data.tags["architecture"] == "lstm")
    client.delete_run(lstm_run)
    third = _statuses(sentiment_flow(config, tracking_settings))
    assert third["train-lstm"] == ("ran", f"earlier result unusable: MLflow run {lstm_run} is deleted")
    assert third["train-embedding_pool"][0] == "cached" and third["tokenise"][0] == "cached"
    assert third["evaluate-lstm"] == ("ran", "input changed (trained run)")
    assert third["register"][0] == "ran" and "input changed (evaluated runs, test metrics)" in third["register"][1]

    # Tuning one architecture retrains that one alone, says which setting changed, and its child run's params
    # show the value it trained with.
    tuned_config = tiny_config(**{"training.per_architecture": "lstm:learning_rate=0.0123"})
    tuned = _statuses(sentiment_flow(tuned_config, tracking_settings))
    assert tuned["train-lstm"][0] == "ran" and "training.learning_rate changed" in tuned["train-lstm"][1]
    assert "0.0123" in tuned["train-lstm"][1]
    assert tuned["train-embedding_pool"][0] == "cached"
    _, children = _parents(client, tracking_settings.experiment_name)
    params = children[-1].data.params
    assert (children[-1].data.tags["architecture"], params["training.learning_rate"]) == ("lstm", "0.0123")
    assert params["training.per_architecture"] == "lstm:learning_rate=0.0123"

    # A longer max_length reruns tokenise and everything after it, nothing before.
    longer = tiny_config(**{"tokenisation.max_length": "80"})
    fourth = _statuses(sentiment_flow(longer, tracking_settings))
    assert fourth["download"][0] == fourth["contracts-raw"][0] == "cached"
    assert fourth["tokenise"] == ("ran", "tokenisation.max_length changed (64 -> 80)")
    assert fourth["contracts-tokenised"][0] == "ran"
    assert "tokenisation.max_length changed (64 -> 80)" in fourth["contracts-tokenised"][1]
    for task in ("train-embedding_pool", "train-lstm"):
        assert fourth[task][0] == "ran" and "arrays digest" in fourth[task][1]
    assert all(fourth[task][0] == "ran" for task in ("evaluate-lstm", "evaluate-embedding_pool", "register"))


def test_code_change_in_a_helper_module_reruns_the_tasks_that_use_it(prefect_api, tiny_config, monkeypatch):
    """Prefect's task-source key misses helper modules; seqflow's code digest covers the modules a task imports."""
    from pathlib import Path

    from seqflow.core import codedigest
    from seqflow.flows.validate import validate_flow
    from seqflow.sentiment import tokenise

    config = tiny_config()
    validate_flow(config)
    helper = Path(tokenise.__file__)
    # The helper module as if edited (the installed file is shared, so the edit is made where it is read).
    monkeypatch.setattr(codedigest, "read_source", lambda path: path.read_bytes() + (b"\n# edited\n" if path == helper else b""))
    statuses = _statuses(validate_flow(config))
    # Download does not import the tokeniser; the tokenise task and both contract checks (whose runner reads
    # the tokenised arrays with it) do.
    assert statuses["download"][0] == "cached"
    assert statuses["tokenise"] == ("ran", "code changed (seqflow.sentiment.tokenise)")
    assert statuses["contracts-raw"] == ("ran", "code changed (seqflow.sentiment.tokenise)")
    # Same vocabulary and arrays: the tokenised contract's inputs did not change, only its code.
    assert statuses["contracts-tokenised"] == ("ran", "code changed (seqflow.sentiment.tokenise)")


def test_deleted_arrays_are_not_reused_and_the_fresh_result_is(prefect_api, tiny_config):
    from seqflow.flows.validate import validate_flow

    config = tiny_config()
    first = validate_flow(config)
    (first.tokenised_dir / "arrays.npz").unlink()
    second = _statuses(validate_flow(config))
    assert second["download"][0] == "cached"
    assert second["tokenise"][0] == "ran"
    assert second["tokenise"][1] == f"earlier result unusable: {first.tokenised_dir / 'arrays.npz'} is gone"
    assert (first.tokenised_dir / "arrays.npz").is_file()
    third = _statuses(validate_flow(config))
    assert set(status for status, _ in third.values()) == {"cached"}
