"""``seqflow run``: validated data -> one child run per architecture -> registry and champion alias."""

from __future__ import annotations

from prefect import flow

from seqflow.config import PipelineConfig
from seqflow.flows.validate import prepare_validated_data
from seqflow.settings import TrackingSettings
from seqflow.steps import RunSummary
from seqflow.tasks.training import (
    close_runs_of_failed_flow,
    evaluate_model,
    finish_tracking,
    register_models,
    start_tracking,
    train_model,
)


@flow(name="seqflow-run", on_failure=[close_runs_of_failed_flow], on_crashed=[close_runs_of_failed_flow])
def sentiment_flow(config: PipelineConfig, settings: TrackingSettings) -> RunSummary:
    """Train, evaluate and register every configured architecture, one after another."""
    data = prepare_validated_data(config)
    parent_run_id = start_tracking(settings, config, data.split_files, data.tokenised, data.contract_reports)
    evaluated = []
    for architecture in config.training.architectures:
        trained = train_model(
            settings, architecture, config, data.split_files, data.tokenised, data.contract_reports, parent_run_id
        )
        evaluated.append(evaluate_model(settings, trained, data.tokenised, config.training.batch_size))
    registration = register_models(settings, evaluated, data.split_files, config.promotion, parent_run_id)
    return finish_tracking(settings, parent_run_id, evaluated, registration)
