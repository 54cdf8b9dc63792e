"""One execution of any pipeline (seqflow.core.executions) on a SQLite store without Prefect, with the toy
pipeline of tests/core/conftest.py: the roles come from its declaration, a killed earlier execution is cleaned
up first, and the parent run closes FINISHED with its table, or FAILED with its versions withdrawn."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from seqflow.core import registry
from seqflow.core.executions import finish_execution, start_execution
from seqflow.core.training_runs import start_architecture_run
from seqflow.core.runs import FLOW_RUN_TAG, ROLE_TAG
from tests.core.conftest import ToyPromotion, ToyRow, ToyScorer, toy_candidate, toy_pipeline


@dataclass(frozen=True)
class ToySummary:
    rows: list[ToyRow]
    tasks: list = field(default_factory=list)

    def render(self) -> str:
        return "\n".join(f"{row.architecture} {row.val_loss:.3f}" for row in self.rows)


def test_an_execution_is_tracked_with_the_roles_its_pipeline_declares(tracker, dead_process):
    pipeline = toy_pipeline(ToyScorer())
    killed = tracker.client.create_run(
        tracker.experiment_id, "killed", tags={ROLE_TAG: "toy-pipeline", **dead_process.as_tags()}
    ).info.run_id

    parent = start_execution(pipeline, tracker, "toy-", "quick", "flow-1", {"dataset_digest": "d"}, {"seed": 7},
                             {"rows": 10.0})
    child = start_architecture_run(tracker, pipeline.architecture_role, "a", parent, "flow-1", "quick", {"dataset_digest": "d"})

    assert tracker.run_status(killed) == "KILLED"  # the dead-owner clean-up ran first
    parent_run, child_run = tracker.client.get_run(parent), tracker.client.get_run(child)
    assert parent_run.info.run_name.startswith("toy-quick-")
    assert {key: parent_run.data.tags[key] for key in (ROLE_TAG, FLOW_RUN_TAG, "profile", "dataset_digest")} == {
        ROLE_TAG: "toy-pipeline", FLOW_RUN_TAG: "flow-1", "profile": "quick", "dataset_digest": "d"
    }
    assert parent_run.data.params == {"seed": "7"} and parent_run.data.metrics == {"rows": 10.0}
    assert child_run.data.tags[ROLE_TAG] == "toy-architecture" and child_run.data.tags["architecture"] == "a"
    assert child_run.data.tags["mlflow.parentRunId"] == parent
    tracker.end_run(child)
    tracker.end_run(parent)


def test_finish_logs_the_table_and_closes_or_withdraws_everything_on_failure(tracker):
    pipeline = toy_pipeline(ToyScorer())
    name = tracker.settings.registered_model_name
    parent = start_execution(pipeline, tracker, "", "quick", None, {}, {}, {})
    registry.register_and_promote(
        pipeline, tracker, [toy_candidate(tracker, parent, "a", 0.5, "d")], ToyPromotion(), parent, lambda: None
    )
    summary = ToySummary([ToyRow("a", 0.5)])

    def figures_fail() -> None:
        raise RuntimeError("plotting failed")

    with pytest.raises(RuntimeError, match="plotting failed"):
        finish_execution(pipeline, tracker, parent, summary, {"best_val_loss": 0.5}, log_more=figures_fail)
    assert tracker.run_status(parent) == "FAILED"
    assert tracker.client.search_model_versions(f"name = '{name}'") == [] and tracker.champion() is None

    parent = start_execution(pipeline, tracker, "", "quick", None, {}, {}, {})
    published = []
    finish_execution(pipeline, tracker, parent, summary, {"best_val_loss": 0.5}, {"state.json": "{}"},
                     publish=published.append)
    assert tracker.run_status(parent) == "FINISHED" and published == [summary]
    assert tracker.read_text(parent, "comparison.csv").splitlines() == ["architecture,val_loss", "a,0.5"]
    assert tracker.read_text(parent, "comparison.txt") == "a 0.500" and tracker.read_text(parent, "state.json") == "{}"
    assert tracker.client.get_run(parent).data.metrics == {"best_val_loss": 0.5}
