"""The tasks that open and close an execution's MLflow runs, for both pipelines and their reruns: the parent
run's start and finish (with the comparison table, logged and published as a Prefect table artifact), the
runs a rerun opens and closes, and the flow hook that closes what a failed flow left RUNNING.

Not cached: they run in every execution. What they log comes from :mod:`seqflow.sentiment.comparison`,
:mod:`seqflow.charlm.comparison` and :mod:`seqflow.core.rerun`; no step's code imports this module.
"""

from __future__ import annotations

import logging

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from seqflow.charlm.comparison import CharRunSummary, finish_charlm_run
from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel
from seqflow.charlm.steps import start_charlm_run
from seqflow.charlm.state import CharLMState
from seqflow.charlm.text import CharEncodedData, CharSplitFiles
from seqflow.charlm.config import CharLMConfig
from seqflow.sentiment.config import PipelineConfig
from seqflow.core.caching import task_statuses
from seqflow.core.connection import StoreUnreachable, with_known_credentials
from seqflow.core.contracts import ContractReport
from seqflow.core.rerun import RerunSummary, finish_rerun_run, start_evaluation_run, start_rerun_run
from seqflow.core.rerun import close_trained_run as close_retrained_run
from seqflow.core.rerun_table import SENTIMENT, ExecutionKind
from seqflow.core.settings import TrackingSettings
from seqflow.core.state import STATE_ARTIFACT, state_to_json
from seqflow.core.tracking import Tracker
from seqflow.sentiment.behaviour import CHECK_TYPES
from seqflow.sentiment.comparison import RunSummary, finish_pipeline_run
from seqflow.sentiment.datasets import SplitFiles
from seqflow.sentiment.records import EvaluatedModel, TrainedModel
from seqflow.sentiment.state import PipelineState
from seqflow.sentiment.steps import RegistrationOutcome, start_pipeline_run
from seqflow.sentiment.tokenise import TokenisedData

logger = logging.getLogger(__name__)


@task
def start_tracking(
    settings: TrackingSettings,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
) -> str:
    """Open the parent MLflow run of a ``seqflow run`` execution; returns its run id."""
    return start_pipeline_run(Tracker(settings), config, split_files, tokenised, contract_reports, flow_run.get_id())


@task
def finish_tracking(
    settings: TrackingSettings,
    parent_run_id: str,
    evaluated: list[EvaluatedModel],
    registration: RegistrationOutcome,
    state: PipelineState | None = None,
) -> RunSummary:
    """Log the comparison table, what each task did and why, and the execution's state (for ``seqflow
    rerun``) to the parent run, publish the table in Prefect, then close the run."""
    return finish_pipeline_run(
        Tracker(settings), parent_run_id, evaluated, registration, *_statuses_and_state(state), publish=publish_comparison_table
    )


def _statuses_and_state(state: PipelineState | CharLMState | None) -> tuple[list, dict[str, str]]:
    """What each task of this flow run did and why, and the execution's state as the text its parent run keeps
    for reruns (neither without a state)."""
    if state is None:
        return [], {}
    return task_statuses(state.config.artifacts_dir, flow_run.get_id()), {STATE_ARTIFACT: state_to_json(state)}


def _publish_table(key: str, rows: list[dict], summary: RunSummary | CharRunSummary) -> None:
    """``rows`` as the Prefect table artifact ``key`` of the flow run, described by the parent run and the decision."""
    create_table_artifact(
        key=key, table=rows, description=f"MLflow parent run {summary.parent_run_id}; promotion: {summary.decision_reason}"
    )


def publish_comparison_table(summary: RunSummary) -> None:
    """The comparison table as a Prefect table artifact of the flow run."""
    _publish_table(
        "architecture-comparison",
        [
            {
                "architecture": row.architecture,
                "epochs": row.epochs,
                "best epoch": row.best_epoch,
                "epochs past best": row.epochs_past_best,
                "best val acc": round(row.best_val_accuracy, 4),
                "test acc": round(row.test_accuracy, 4),
                "AUC": round(row.roc_auc, 4),
                "gap at best": round(row.gap_at_best, 4),
                "gap at end": round(row.gap_at_end, 4),
                **{f"{check} pass rate": round(row.behaviour.get(check, float("nan")), 3) for check in CHECK_TYPES},
                "seconds": round(row.seconds, 1),
                "version": row.version,
                "champion": row.champion,
            }
            for row in summary.rows
        ],
        summary,
    )


@task
def start_charlm_tracking(
    settings: TrackingSettings,
    config: CharLMConfig,
    split_files: CharSplitFiles,
    encoded: CharEncodedData,
    contract_reports: list[ContractReport],
) -> str:
    """Open the parent MLflow run of a ``seqflow charlm run`` execution; returns its run id."""
    return start_charlm_run(Tracker(settings), config, split_files, encoded, contract_reports, flow_run.get_id())


@task
def finish_charlm_tracking(
    settings: TrackingSettings, parent_run_id: str, evaluated: list[EvaluatedCharModel], registration: RegistrationOutcome,
    state: CharLMState | None = None,
) -> CharRunSummary:
    """Log the comparison table, what each task did and why, and the execution's state (for ``seqflow charlm
    rerun``) to the parent run, publish the table in Prefect, then close the run."""
    return finish_charlm_run(
        Tracker(settings), parent_run_id, evaluated, registration, *_statuses_and_state(state), publish=publish_charlm_table
    )


def publish_charlm_table(summary: CharRunSummary) -> None:
    """The comparison table as a Prefect table artifact of the flow run."""
    _publish_table(
        "charlm-comparison",
        [
            {
                "architecture": row.architecture,
                "epochs": row.epochs,
                "best epoch": row.best_epoch,
                "val loss": round(row.val_loss, 4),
                "val perplexity": round(row.val_perplexity, 3),
                "seconds": round(row.seconds, 1),
                "version": row.version,
                "champion": row.champion,
            }
            for row in summary.rows
        ],
        summary,
    )


def close_runs_of_failed_flow(flow, flow_run_record, state) -> None:  # noqa: ANN001 - Prefect hook signature
    """Flow hook: end every MLflow run this flow run left RUNNING: KILLED when the flow crashed (interrupted,
    SIGTERM), FAILED when it failed."""
    parameters = flow_run_record.parameters or {}
    raw_settings = parameters.get("settings")
    # Prefect's database holds the settings without credentials: take them from where this process opened the store.
    settings = (
        raw_settings if isinstance(raw_settings, TrackingSettings)
        else with_known_credentials(TrackingSettings(**(raw_settings or {})))
    )
    status = "KILLED" if state.is_crashed() else "FAILED"
    try:
        tracker = Tracker(settings)
    except StoreUnreachable as error:
        # Most often the reason the flow failed; said once by the failed task, so one line here, no traceback.
        logger.warning("cannot close MLflow runs of the failed flow: %s", error)
        return
    closed = tracker.close_open_runs(str(flow_run_record.id), status)
    if closed:
        logger.warning("marked %d MLflow run(s) of the failed flow %s: %s", len(closed), status, closed)


@task
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


@task(task_run_name="open_evaluation_run-{trained.architecture}")
def open_evaluation_run(
    settings: TrackingSettings,
    trained: TrainedModel | TrainedCharModel,
    parent_run_id: str,
    rerun_of: str,
    kind: ExecutionKind = SENTIMENT,
) -> TrainedModel | TrainedCharModel:
    """A new child run to evaluate an earlier trained model in."""
    return start_evaluation_run(Tracker(settings), trained, parent_run_id, rerun_of, flow_run.get_id(), kind)


@task(task_run_name="close_trained_run-{trained.architecture}")
def close_trained_run(settings: TrackingSettings, trained: TrainedModel | TrainedCharModel, rerun_of: str) -> None:
    """Close a retrained child run (it is not evaluated: downstream tasks are not rerun)."""
    close_retrained_run(Tracker(settings), trained, rerun_of)


@task
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
