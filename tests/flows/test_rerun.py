"""`seqflow rerun TASK`: exactly one task again, past the cache, on the outputs of an earlier execution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from seqflow.core.tracking import ROLE_TAG
from tests.flows.conftest import copy_of_store


def _env_file(tmp_path: Path, settings) -> Path:
    env_file = tmp_path / "test.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={settings.tracking_uri}\n"
        f"MLFLOW_EXPERIMENT_NAME={settings.experiment_name}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={settings.registered_model_name}\n"
        f"SEQFLOW_ARTIFACT_LOCATION={settings.artifact_location}\n"
    )
    return env_file


def _runs(client: MlflowClient, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def earlier_execution(prefect_api, shared_config, shared_settings):
    """One execution shared by this module's tests. Tests that rerun tasks do so on a copy of the store
    (:func:`store_copy`), so each sees only this execution; reruns read its artifacts, never change them."""
    from seqflow.flows.sentiment import sentiment_flow

    # One epoch: reruns need finished models, not good ones.
    config = shared_config(**{"training.epochs": "1"})
    return config, sentiment_flow(config, shared_settings)


@pytest.fixture
def store_copy(earlier_execution, shared_settings, tmp_path):
    """Tracking settings for a copy of the module's store made after the earlier execution."""
    return copy_of_store(shared_settings, tmp_path)


@pytest.mark.slow
def test_rerun_train_one_architecture_on_the_earlier_outputs(earlier_execution, store_copy, tmp_path, capsys):
    from seqflow.cli import main

    tracking_settings = store_copy
    config, earlier = earlier_execution
    client = MlflowClient(tracking_settings.tracking_uri)
    children_before = {run.info.run_id for run in _runs(client, tracking_settings.experiment_name)}
    exit_code = main(["--env-file", str(_env_file(tmp_path, tracking_settings)), "rerun", "train", "--arch", "lstm"])
    output = capsys.readouterr().out
    assert exit_code == 0, output

    new_runs = [run for run in _runs(client, tracking_settings.experiment_name) if run.info.run_id not in children_before]
    parents = [run for run in new_runs if run.data.tags[ROLE_TAG] == "pipeline"]
    children = [run for run in new_runs if run.data.tags[ROLE_TAG] == "architecture"]
    # One new parent and one new lstm child, both tagged with the execution they rerun; nothing else ran.
    assert len(parents) == 1 and len(children) == 1
    parent, child = parents[0], children[0]
    assert parent.data.tags["rerun_of"] == earlier.parent_run_id
    assert parent.data.tags["seqflow.rerun_task"] == "train"
    assert child.data.tags["rerun_of"] == earlier.parent_run_id
    assert child.data.tags["architecture"] == "lstm"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {parent.info.status, child.info.status} == {"FINISHED"}
    # The earlier execution's data was reused, not rebuilt: same dataset and array digests.
    earlier_tags = client.get_run(earlier.parent_run_id).data.tags
    assert child.data.tags["array_digest"] == earlier_tags["array_digest"]
    assert child.data.params["tokenisation.max_length"] == str(config.tokenisation.max_length)
    with open(client.download_artifacts(parent.info.run_id, "tasks.json")) as handle:
        assert json.load(handle) == [
            {"task": "train-lstm", "status": "ran", "reason": "forced (rerun)", "run_id": None}
        ]
    with open(client.download_artifacts(parent.info.run_id, "pipeline_state.json")) as handle:
        state = json.load(handle)
    trained = {model["architecture"]: model["run_id"] for model in state["trained"]}
    assert trained["lstm"] == child.info.run_id and trained["embedding_pool"] != child.info.run_id
    # No test metrics: evaluate is downstream and is not rerun; no new registered version either.
    assert "test_accuracy" not in child.data.metrics
    assert len(client.search_model_versions(f"name='{tracking_settings.registered_model_name}'")) == 2
    assert f"rerun_of={earlier.parent_run_id}" in output


@pytest.mark.slow
def test_rerun_evaluate_and_register_use_the_earlier_models(earlier_execution, store_copy):
    from seqflow.flows.rerun import rerun_flow
    from seqflow.sentiment.rerun import plan_rerun
    from seqflow.core.tracking import Tracker

    tracking_settings = store_copy
    _, earlier = earlier_execution
    client = MlflowClient(tracking_settings.tracking_uri)
    tracker = Tracker(tracking_settings)
    evaluation = rerun_flow(plan_rerun(tracker, "evaluate", earlier.parent_run_id, ["embedding_pool"], {}), tracking_settings)
    assert [(s.task, s.status, s.reason) for s in evaluation.tasks] == [("evaluate-embedding_pool", "ran", "forced (rerun)")]
    child = client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{evaluation.parent_run_id}'"
    )[0]
    earlier_child = next(row for row in earlier.rows if row.architecture == "embedding_pool")
    assert child.data.tags["rerun_of"] == earlier.parent_run_id
    # The same model on the same test split scores the same.
    assert child.data.metrics["test_accuracy"] == pytest.approx(earlier_child.test_accuracy, abs=1e-6)

    registration = rerun_flow(plan_rerun(tracker, "register", earlier.parent_run_id, None, {}), tracking_settings)
    versions = client.search_model_versions(f"name='{tracking_settings.registered_model_name}'")
    assert len(versions) == 4
    assert {v.tags["parent_run_id"] for v in versions} == {earlier.parent_run_id, registration.parent_run_id}
    assert client.get_run(registration.parent_run_id).data.tags["rerun_of"] == earlier.parent_run_id


def test_rerun_from_an_unknown_run_says_so(tracking_settings, tmp_path, capsys):
    from seqflow.cli import main

    env_file = str(_env_file(tmp_path, tracking_settings))
    assert main(["--env-file", env_file, "rerun", "train", "--from-run", "0123456789abcdef"]) == 2
    assert "no MLflow run '0123456789abcdef'" in capsys.readouterr().err
    assert main(["--env-file", env_file, "rerun", "tokenise"]) == 2
    assert "no FINISHED `seqflow run` execution in experiment 'seqflow-test'" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_with_deleted_upstream_files_fails_before_running(earlier_execution, shared_settings):
    from seqflow.core.errors import SeqflowError
    from seqflow.sentiment.rerun import plan_rerun
    from seqflow.core.tracking import Tracker

    config, earlier = earlier_execution
    arrays = next((Path(config.artifacts_dir) / "tokenised").glob("*/arrays.npz"))
    # Moved away, not deleted: the module's other tests rerun from these arrays.
    kept = arrays.rename(arrays.with_name("arrays.npz.kept"))
    try:
        with pytest.raises(SeqflowError, match=f"cannot rerun train from parent run {earlier.parent_run_id}: .*arrays.npz is gone"):
            plan_rerun(Tracker(shared_settings), "train", None, ["lstm"], {})
    finally:
        kept.rename(arrays)
    with pytest.raises(SeqflowError, match="--arch applies to train and evaluate"):
        plan_rerun(Tracker(shared_settings), "register", None, ["lstm"], {})


@pytest.mark.slow
def test_rerun_validate_runs_both_contract_checks_by_their_task_names(earlier_execution, store_copy):
    """`validate` (its name in earlier releases) reruns both contract checks; each is also a rerun of its own."""
    from seqflow.core.tracking import Tracker
    from seqflow.flows.rerun import rerun_flow
    from seqflow.sentiment.rerun import plan_rerun

    tracker = Tracker(store_copy)
    _, earlier = earlier_execution
    both = rerun_flow(plan_rerun(tracker, "validate", earlier.parent_run_id, None, {}), store_copy)
    assert [(s.task, s.status, s.reason) for s in both.tasks] == [
        ("contracts-raw", "ran", "forced (rerun)"), ("contracts-tokenised", "ran", "forced (rerun)"),
    ]
    assert len(both.outputs) == 2 and all(line.endswith("passed") for line in both.outputs), both.outputs
    client = MlflowClient(store_copy.tracking_uri)
    with open(client.download_artifacts(both.parent_run_id, "pipeline_state.json")) as handle:
        reports = [report["contract"] for report in json.load(handle)["contract_reports"]]
    assert sorted(reports) == sorted(set(reports)) and len(reports) == 2

    # One check by its task name, chained on the state the first rerun recorded: its report is replaced, the
    # other kept.
    one = rerun_flow(plan_rerun(tracker, "check_tokenised", both.parent_run_id, None, {}), store_copy)
    assert [(s.task, s.status) for s in one.tasks] == [("contracts-tokenised", "ran")]
    assert client.get_run(one.parent_run_id).data.tags["seqflow.rerun_task"] == "check_tokenised"
    with open(client.download_artifacts(one.parent_run_id, "pipeline_state.json")) as handle:
        assert sorted(report["contract"] for report in json.load(handle)["contract_reports"]) == sorted(reports)


@pytest.mark.slow
def test_run_and_rerun_json_are_their_summaries_alone_on_stdout(earlier_execution, store_copy, shared_folder, tmp_path, capsys):
    """`seqflow run --json` (here a repeat of the module's execution, its data steps reused) and `rerun --json` print
    the summary their closing table and lines are built from, as the only thing on standard output."""
    from seqflow.cli import main
    from tests.flows.conftest import tiny_overrides_for

    _, earlier = earlier_execution
    env_file = str(_env_file(tmp_path, store_copy))
    settings = {**tiny_overrides_for(shared_folder, shared_folder / "short_reviews.csv"), "training.epochs": "1"}
    capsys.readouterr()
    code = main(["--env-file", env_file, "run", "--json", *(f"--set={key}={value}" for key, value in settings.items())])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary = json.loads(captured.out)
    assert [row["architecture"] for row in summary["rows"]] == [row.architecture for row in earlier.rows]
    assert [task["task"] for task in summary["tasks"]][:1] == ["download"] and summary["tasks"][0]["status"] == "cached"
    assert summary["registered_model_name"] == store_copy.registered_model_name
    assert MlflowClient(store_copy.tracking_uri).get_run(summary["parent_run_id"]).info.status == "FINISHED"

    code = main(["--env-file", env_file, "rerun", "check_raw", "--from-run", earlier.parent_run_id, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    rerun = json.loads(captured.out)
    assert (rerun["task"], rerun["rerun_of"]) == ("check_raw", earlier.parent_run_id)
    assert [(task["task"], task["status"]) for task in rerun["tasks"]] == [("contracts-raw", "ran")]
