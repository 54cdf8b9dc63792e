"""Cleaning up after a dead or interrupted process: runs left RUNNING by a dead process are closed (those of live
processes and other hosts are not), versions of unfinished executions are withdrawn, an interrupted
registration leaves no version and the champion alias where it was."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from seqflow.core.processes import Interrupted
from seqflow.core.processes import HOST_TAG, PID_TAG, STARTED_TAG, ProcessIdentity, current_process, is_gone
from seqflow.sentiment.config import PromotionConfig
from seqflow.sentiment.steps import EvaluatedModel, close_runs_of_dead_executions, register_and_promote
from seqflow.core.tracking import (
    CHAMPION_ALIAS,
    CLOSED_REASON_TAG,
    PREVIOUS_CHAMPION_TAG,
    ROLE_TAG,
    Tracker,
    end_open_runs,
    ended_status,
    open_runs,
)
from tests.flows.conftest import tracking_settings_for


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    """A fresh store of this test's own."""
    return Tracker(tracking_settings_for(tmp_path))


def test_process_identity_round_trips_through_tags():
    me = current_process()
    assert ProcessIdentity.from_tags(me.as_tags()) == ProcessIdentity(me.host, me.pid, round(me.started, 3))
    assert ProcessIdentity.from_tags({HOST_TAG: "h", PID_TAG: "12"}) is None
    assert ProcessIdentity.from_tags({HOST_TAG: "h", PID_TAG: "twelve", STARTED_TAG: "1.0"}) is None


def test_dead_reused_and_foreign_processes(dead_process):
    me = current_process()
    assert not is_gone(me)
    assert is_gone(dead_process)
    # Our own pid with another start time: the pid was reused, the recorded owner is gone.
    assert is_gone(ProcessIdentity(me.host, me.pid, me.started - 3600))
    # A process on another host cannot be checked from here: never declared gone.
    assert not is_gone(ProcessIdentity(me.host + "-elsewhere", dead_process.pid, dead_process.started))


def _run_owned_by(tracker: Tracker, name: str, owner: ProcessIdentity | None, role: str = "architecture") -> str:
    tags = {ROLE_TAG: role, **(owner.as_tags() if owner else {})}
    return tracker.client.create_run(tracker.experiment_id, run_name=name, tags=tags).info.run_id


def test_only_runs_of_dead_processes_on_this_host_are_closed(tracker, dead_process, caplog):
    me = current_process()
    dead = _run_owned_by(tracker, "dead", dead_process)
    reused = _run_owned_by(tracker, "reused-pid", ProcessIdentity(me.host, me.pid, me.started - 3600))
    alive = tracker.start_run("alive", {ROLE_TAG: "architecture"})
    elsewhere = _run_owned_by(tracker, "elsewhere", ProcessIdentity("another-host", dead_process.pid, 1.0))
    untagged = _run_owned_by(tracker, "untagged", None)
    finished = _run_owned_by(tracker, "finished", dead_process)
    tracker.client.set_terminated(finished, "FINISHED")

    with caplog.at_level("WARNING", logger="seqflow.sentiment.steps"):
        close_runs_of_dead_executions(tracker)

    status = {run_id: tracker.run_status(run_id) for run_id in (dead, reused, alive, elsewhere, untagged, finished)}
    assert status == {
        dead: "KILLED", reused: "KILLED", alive: "RUNNING", elsewhere: "RUNNING", untagged: "RUNNING", finished: "FINISHED"
    }
    reason = tracker.client.get_run(dead).data.tags[CLOSED_REASON_TAG]
    assert reason == f"owner process {dead_process.pid} on {dead_process.host} is gone"
    assert CLOSED_REASON_TAG not in tracker.client.get_run(alive).data.tags
    assert f"closed MLflow run {dead} (dead) as KILLED" in caplog.text
    tracker.end_run(alive)


def test_versions_of_a_killed_execution_are_withdrawn_and_the_champion_restored(tracker, dead_process):
    name = tracker.settings.registered_model_name
    client: MlflowClient = tracker.client
    client.create_registered_model(name)
    finished_parent = _run_owned_by(tracker, "finished-execution", dead_process, role="pipeline")
    client.set_terminated(finished_parent, "FINISHED")
    dead_parent = _run_owned_by(tracker, "killed-execution", dead_process, role="pipeline")
    child = tracker.start_run("child", {ROLE_TAG: "architecture"})
    tracker.end_run(child)

    def register(parent_run_id: str) -> str:
        source = f"runs:/{child}/model"
        return str(client.create_model_version(name, source, child, tags={"parent_run_id": parent_run_id}).version)

    champion_before = register(finished_parent)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, champion_before)
    # The killed execution registered two versions and moved the alias before it died.
    killed_versions = [register(dead_parent), register(dead_parent)]
    client.set_model_version_tag(name, killed_versions[1], PREVIOUS_CHAMPION_TAG, champion_before)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, killed_versions[1])

    close_runs_of_dead_executions(tracker)

    assert tracker.run_status(dead_parent) == "KILLED"
    remaining = {str(version.version) for version in client.search_model_versions(f"name = '{name}'")}
    assert remaining == {champion_before}
    assert str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version) == champion_before


def test_a_killed_first_execution_leaves_no_champion(tracker, dead_process):
    name = tracker.settings.registered_model_name
    tracker.client.create_registered_model(name)
    dead_parent = _run_owned_by(tracker, "killed-execution", dead_process, role="pipeline")
    version = tracker.client.create_model_version(name, "runs:/x/model", None, tags={"parent_run_id": dead_parent})
    tracker.client.set_model_version_tag(name, version.version, PREVIOUS_CHAMPION_TAG, "")
    tracker.client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)

    close_runs_of_dead_executions(tracker)

    assert tracker.client.search_model_versions(f"name = '{name}'") == []
    assert tracker.champion() is None


def test_a_charlm_execution_first_closes_what_a_killed_one_left(tracker, dead_process, tmp_path):
    from seqflow.charlm.text import encode_char_splits, write_char_splits
    from seqflow.charlm.sources import CharSource
    from seqflow.charlm.steps import start_charlm_run
    from seqflow.charlm.config import CharDataConfig, resolve_charlm_config

    name = tracker.settings.registered_model_name
    tracker.client.create_registered_model(name)
    dead_parent = _run_owned_by(tracker, "killed-charlm", dead_process, role="charlm-pipeline")
    dead_child = _run_owned_by(tracker, "char_gru", dead_process, role="charlm-architecture")
    tracker.client.create_model_version(name, f"runs:/{dead_child}/model", dead_child, tags={"parent_run_id": dead_parent})
    text = "".join(f"line {i}: to be or not to be\n" for i in range(100))
    split_files = write_char_splits(CharSource("text:x", text), CharDataConfig(block_chars=500), 7, tmp_path)

    run_id = start_charlm_run(tracker, resolve_charlm_config("quick"), split_files,
                              encode_char_splits(split_files, tmp_path), [], None)

    assert tracker.run_status(dead_parent) == tracker.run_status(dead_child) == "KILLED"
    assert tracker.client.search_model_versions(f"name = '{name}'") == []
    tracker.end_run(run_id)


def test_process_remembers_its_open_runs_until_they_end(tracker):
    end_open_runs("KILLED")  # runs an earlier test of this worker process left registered are not this test's
    first = tracker.start_run("first", {ROLE_TAG: "architecture"})
    second = tracker.start_run("second", {ROLE_TAG: "architecture"})
    assert {first, second} <= set(open_runs())
    run_tags = tracker.client.get_run(first).data.tags
    assert ProcessIdentity.from_tags(run_tags) == ProcessIdentity.from_tags(current_process().as_tags())
    tracker.end_run(first, "FINISHED")
    assert first not in open_runs()
    # What a signal handler or the CLI does when the process is interrupted.
    assert end_open_runs("KILLED") == [second]
    assert tracker.run_status(second) == "KILLED" and tracker.run_status(first) == "FINISHED"
    assert open_runs() == {}


def test_interrupts_end_runs_killed_and_errors_failed():
    assert ended_status(ValueError("bad")) == "FAILED"
    assert ended_status(KeyboardInterrupt()) == "KILLED"
    assert ended_status(SystemExit(143)) == "KILLED"
    from prefect.exceptions import TerminationSignal

    assert ended_status(TerminationSignal(signal=15)) == "KILLED"


def _evaluated_model(tracker: Tracker, parent_run_id: str, accuracy: float) -> EvaluatedModel:
    """A FINISHED child run with a (minimal) logged model, as evaluation leaves it."""
    run_id = tracker.start_run("embedding_pool", {ROLE_TAG: "architecture"}, parent_run_id=parent_run_id)
    tracker.log_text(run_id, "artifact_path: model\nflavors: {}\n", "model/MLmodel")
    tracker.end_run(run_id)
    return EvaluatedModel(
        architecture="embedding_pool",
        run_id=run_id,
        model_uri=f"runs:/{run_id}/model",
        dataset_digest="digest",
        test_metrics={"accuracy": accuracy, "roc_auc": accuracy},
        overfitting={},
        epochs_run=1,
        seconds=1.0,
        seconds_per_epoch=1.0,
    )


# Registration's inputs: promotion reads only the test split's digest; no floor for these made-up accuracies.
SPLIT_FILES, PROMOTION = SimpleNamespace(digest="digest"), PromotionConfig(accuracy_floor=0.0)


def _finished_execution(tracker: Tracker, accuracy: float) -> str:
    """An execution that registered one model (champion when it beats the current one) and finished."""
    parent = tracker.start_run("earlier", {ROLE_TAG: "pipeline"})
    register_and_promote(tracker, [_evaluated_model(tracker, parent, accuracy)], SPLIT_FILES, PROMOTION, parent)
    tracker.end_run(parent)
    return str(tracker.champion().version)


@pytest.mark.parametrize("earlier_champion", [True, False])
def test_registration_interrupted_after_the_alias_moved_keeps_nothing(tracker, monkeypatch, earlier_champion):
    name = tracker.settings.registered_model_name
    champion_before = _finished_execution(tracker, 0.7) if earlier_champion else None

    parent = tracker.start_run("interrupted", {ROLE_TAG: "pipeline"})
    better = _evaluated_model(tracker, parent, 0.9)
    moved_to = []
    original_set_champion = tracker.set_champion

    def set_champion_then_interrupt(version, audit, **details):  # noqa: ANN001, ANN003 - SIGTERM right after the alias moved
        original_set_champion(version, audit, **details)
        moved_to.append(version)
        raise KeyboardInterrupt

    monkeypatch.setattr(tracker, "set_champion", set_champion_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        register_and_promote(tracker, [better], SPLIT_FILES, PROMOTION, parent)

    assert moved_to, "the alias was never moved: the test did not interrupt where it meant to"
    remaining = {str(version.version) for version in tracker.client.search_model_versions(f"name = '{name}'")}
    assert remaining == ({champion_before} if champion_before else set())
    champion = tracker.champion()
    assert (str(champion.version) if champion else None) == champion_before


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (RuntimeError("step failed"), "FAILED"),
        (KeyboardInterrupt(), "KILLED"),
        # What the CLI raises on SIGTERM (see seqflow.core.processes.interrupts_unwind).
        (Interrupted(signal.SIGTERM), "KILLED"),
    ],
    ids=["error", "ctrl-c", "sigterm"],
)
def test_closing_on_failure_ends_the_run_and_reraises(tracker, raised, status):
    run_id = tracker.start_run("step", {ROLE_TAG: "architecture"})
    with pytest.raises(type(raised)) as caught:
        with tracker.closing_on_failure(run_id):
            raise raised
    assert caught.value is raised
    assert tracker.run_status(run_id) == status
    assert run_id not in open_runs()


def test_closing_on_failure_leaves_a_successful_run_open_unless_told_to_finish(tracker):
    kept_open = tracker.start_run("train", {ROLE_TAG: "architecture"})
    with tracker.closing_on_failure(kept_open):
        tracker.log_metrics(kept_open, {"loss": 0.5})
    assert tracker.run_status(kept_open) == "RUNNING" and kept_open in open_runs()
    tracker.end_run(kept_open)
    finished = tracker.start_run("evaluate", {ROLE_TAG: "architecture"})
    with tracker.closing_on_failure(finished, finish=True):
        tracker.log_metrics(finished, {"accuracy": 0.9})
    assert tracker.run_status(finished) == "FINISHED" and finished not in open_runs()


def test_a_cleanup_that_fails_does_not_hide_the_error_that_caused_it(tracker, monkeypatch, caplog):
    run_id = tracker.start_run("step", {ROLE_TAG: "pipeline"})

    def store_gone(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("tracking store unreachable")

    monkeypatch.setattr(tracker.client, "set_terminated", store_gone)
    monkeypatch.setattr(tracker.client, "search_model_versions", store_gone)
    with caplog.at_level("ERROR", logger="seqflow.core.tracking"), pytest.raises(RuntimeError, match="the real failure"):
        with tracker.closing_on_failure(run_id, finish=True, withdraw_versions=True):
            raise RuntimeError("the real failure")
    assert f"could not end MLflow run {run_id} as FAILED: tracking store unreachable" in caplog.text
    assert f"could not withdraw the versions of failed execution {run_id}" in caplog.text
    # Still listed, so the CLI's last resort (end_open_runs) tries again.
    assert run_id in open_runs()
    monkeypatch.undo()
    assert run_id in end_open_runs("FAILED")
    assert tracker.run_status(run_id) == "FAILED"


def test_a_failed_publication_of_the_table_fails_the_execution_before_it_is_finished(tracker):
    """The Prefect table is published before the parent run closes: if the Prefect API fails there, the
    execution ends FAILED with its versions withdrawn, instead of a FINISHED record behind a failed flow."""
    from seqflow.sentiment.comparison import finish_pipeline_run

    name = tracker.settings.registered_model_name
    champion_before = _finished_execution(tracker, 0.7)
    parent = tracker.start_run("failing", {ROLE_TAG: "pipeline"})
    registration = register_and_promote(tracker, [_evaluated_model(tracker, parent, 0.9)], SPLIT_FILES, PROMOTION, parent)
    published = []

    def unreachable_prefect(summary) -> None:  # noqa: ANN001 - a RunSummary
        published.append(summary.parent_run_id)
        raise ConnectionError("Prefect API unreachable")

    with pytest.raises(ConnectionError, match="Prefect API unreachable"):
        finish_pipeline_run(tracker, parent, [_evaluated_model(tracker, parent, 0.9)], registration, publish=unreachable_prefect)
    assert published == [parent]
    assert tracker.run_status(parent) == "FAILED"
    remaining = {str(version.version) for version in tracker.client.search_model_versions(f"name = '{name}'")}
    assert remaining == {champion_before}
    assert str(tracker.champion().version) == champion_before


@pytest.mark.parametrize("earlier_champion", [True, False])
def test_a_failed_execution_withdraws_its_versions_and_gives_the_alias_back(tracker, earlier_champion):
    name = tracker.settings.registered_model_name
    champion_before = _finished_execution(tracker, 0.7) if earlier_champion else None
    parent = tracker.start_run("failing", {ROLE_TAG: "pipeline"})
    registration = register_and_promote(tracker, [_evaluated_model(tracker, parent, 0.9)], SPLIT_FILES, PROMOTION, parent)
    assert registration.champion_version == registration.versions[0].version, "the better model should be champion"

    # What finish_pipeline_run does around logging the summary, when that logging fails.
    with pytest.raises(RuntimeError, match="summary upload failed"):
        with tracker.closing_on_failure(parent, finish=True, withdraw_versions=True):
            raise RuntimeError("summary upload failed")

    assert tracker.run_status(parent) == "FAILED"
    remaining = {str(version.version) for version in tracker.client.search_model_versions(f"name = '{name}'")}
    assert remaining == ({champion_before} if champion_before else set())
    champion = tracker.champion()
    assert (str(champion.version) if champion else None) == champion_before
