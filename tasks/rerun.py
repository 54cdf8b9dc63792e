"""Tasks that open and close the MLflow runs of ``seqflow rerun`` and ``seqflow charlm rerun``."""

from __future__ import annotations

from prefect import task
from prefect.runtime import flow_run

from seqflow.core.caching import task_statuses
from seqflow.charlm.steps import TrainedCharModel
from seqflow.config import CharLMConfig, PipelineConfig
from seqflow.core.state import CharLMState, PipelineState
from seqflow.core.rerun import (
    SENTIMENT,
    ExecutionKind,
    RerunSummary,
    close_trained_run,
    finish_rerun_run,
    start_evaluation_run,
    start_rerun_run,
)
from seqflow.core.settings import TrackingSettings
from seqflow.sentiment.steps import TrainedModel
from seqflow.core.tracking import Tracker


@task(name="start-rerun-tracking")
def start_rerun_tracking(
    settings: TrackingSettings,
    task_name: str,
    rerun_of: str,
    config: PipelineConfig | CharLMConfig,
    state: PipelineState | CharLMState,
    kind: ExecutionKind = SENTIMENT,
) -> str:
    """Open the rerun's parent MLflow run, tagged ``rerun_of``; returns its run id."""
    return start_rerun_run(Tracker(settings), task_name, rerun_of, config, state, flow_run.get_id(), kind)


@task(name="open-evaluation-run", task_run_name="open-evaluation-run-{trained.architecture}")
def open_evaluation_run(
    settings: TrackingSettings,
    trained: TrainedModel | TrainedCharModel,
    parent_run_id: str,
    rerun_of: str,
    kind: ExecutionKind = SENTIMENT,
) -> TrainedModel | TrainedCharModel:
    """A new child run to evaluate an earlier trained model in."""
    return start_evaluation_run(Tracker(settings), trained, parent_run_id, rerun_of, flow_run.get_id(), kind)


@task(name="close-trained-run", task_run_name="close-trained-run-{trained.architecture}")
def close_rerun_training(settings: TrackingSettings, trained: TrainedModel | TrainedCharModel, rerun_of: str) -> None:
    """Close a retrained child run (it is not evaluated: downstream tasks are not rerun)."""
    close_trained_run(Tracker(settings), trained, rerun_of)


@task(name="finish-rerun-tracking")
def finish_rerun_tracking(
    settings: TrackingSettings,
    task_name: str,
    rerun_of: str,
    parent_run_id: str,
    state: PipelineState | CharLMState,
    outputs: list[str],
) -> RerunSummary:
    """Log the new state and what ran to the rerun's parent run and close it."""
    statuses = task_statuses(state.config.artifacts_dir, flow_run.get_id())
    return finish_rerun_run(Tracker(settings), task_name, rerun_of, parent_run_id, state, outputs, statuses)
