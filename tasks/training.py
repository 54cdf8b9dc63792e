"""Tasks that track, train, evaluate and register the sentiment models."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from seqflow.sentiment.behaviour import CHECK_TYPES
from seqflow.core.caching import task_statuses
from seqflow.config import BehaviourConfig, PipelineConfig, PromotionConfig
from seqflow.core.contracts import ContractReport
from seqflow.sentiment.datasets import SplitFiles
from seqflow.core.state import STATE_ARTIFACT, PipelineState, state_to_json
from seqflow.core.connection import StoreUnreachable, with_known_credentials
from seqflow.core.settings import TrackingSettings
from seqflow.sentiment.steps import (
    EvaluatedModel,
    RegistrationOutcome,
    RunSummary,
    TrainedModel,
    evaluate_architecture,
    finish_pipeline_run,
    register_and_promote,
    start_pipeline_run,
    train_architecture,
)
from seqflow.sentiment.tokenise import TokenisedData
from seqflow.core.tracking import Tracker


@task(name="start-tracking")
def start_tracking(
    settings: TrackingSettings,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
) -> str:
    """Open the parent MLflow run of this execution; returns its run id."""
    return start_pipeline_run(Tracker(settings), config, split_files, tokenised, contract_reports, flow_run.get_id())


@task(name="train", task_run_name="train-{architecture}")
def train_model(
    settings: TrackingSettings,
    architecture: str,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
    parent_run_id: str,
) -> TrainedModel:
    """Fit one architecture in its own child run."""
    return train_architecture(
        Tracker(settings), architecture, config, split_files, tokenised, contract_reports, parent_run_id, flow_run.get_id()
    )


@task(name="evaluate", task_run_name="evaluate-{trained.architecture}")
def evaluate_model(
    settings: TrackingSettings, trained: TrainedModel, tokenised: TokenisedData, batch_size: int, behaviour: BehaviourConfig
) -> EvaluatedModel:
    """Score the held-out test split, run the behavioural checks, and close the child run."""
    return evaluate_architecture(Tracker(settings), trained, tokenised, batch_size, behaviour)


@task(name="register")
def register_models(
    settings: TrackingSettings,
    evaluated: list[EvaluatedModel],
    split_files: SplitFiles,
    promotion: PromotionConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every model and move the champion alias if the best one passes the gates."""
    return register_and_promote(Tracker(settings), evaluated, split_files, promotion, parent_run_id)


@task(name="finish-tracking")
def finish_tracking(
    settings: TrackingSettings,
    parent_run_id: str,
    evaluated: list[EvaluatedModel],
    registration: RegistrationOutcome,
    state: PipelineState | None = None,
) -> RunSummary:
    """Log the comparison table, what each task did and why, and the execution's state (for ``seqflow
    rerun``) to the parent run, publish the table in Prefect, then close the run."""
    statuses = task_statuses(state.config.artifacts_dir, flow_run.get_id()) if state is not None else []
    texts = {STATE_ARTIFACT: state_to_json(state)} if state is not None else {}
    return finish_pipeline_run(
        Tracker(settings), parent_run_id, evaluated, registration, statuses, texts, publish=publish_comparison_table
    )


def publish_comparison_table(summary: RunSummary) -> None:
    """The comparison table as a Prefect table artifact of the flow run."""
    create_table_artifact(
        key="architecture-comparison",
        table=[
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
        description=f"MLflow parent run {summary.parent_run_id}; promotion: {summary.decision_reason}",
    )


def close_runs_of_failed_flow(flow, flow_run_record, state) -> None:  # noqa: ANN001 - Prefect hook signature
    """Flow hook: end every MLflow run this flow run left RUNNING: KILLED when the flow crashed (interrupted,
    SIGTERM), FAILED when it failed."""
    import logging

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
        logging.getLogger(__name__).warning("cannot close MLflow runs of the failed flow: %s", error)
        return
    closed = tracker.close_open_runs(str(flow_run_record.id), status)
    if closed:
        logging.getLogger(__name__).warning("marked %d MLflow run(s) of the failed flow %s: %s", len(closed), status, closed)
