"""``seqflow run``: validated data -> one child run per architecture -> registry and champion alias."""

from __future__ import annotations

from seqflow.core.caching import cached
from seqflow.core.config import ExecutionConfig
from seqflow.sentiment.config import PipelineConfig
from seqflow.core.execution import Submitted, evaluated_models, pipeline_flow, run_flow_on
from seqflow.flows.validate import prepare_validated_data
from seqflow.core.settings import TrackingSettings
from seqflow.sentiment.comparison import RunSummary
from seqflow.sentiment.state import PipelineState
from seqflow.tasks.sentiment import ensemble, evaluate, refit, register, train
from seqflow.tasks.tracking import close_runs_of_failed_flow, finish_tracking, start_tracking


@pipeline_flow("seqflow-run", close_runs_of_failed_flow)
def sentiment_flow(config: PipelineConfig, settings: TrackingSettings) -> RunSummary:
    """Train, evaluate and register every configured architecture: one after another by default, in parallel
    when the flow runs with a parallel task runner (see :func:`run_sentiment_flow`).

    Every task but the tracking ones is cached (see :mod:`seqflow.core.caching`): a repeated execution with the same
    inputs reuses the earlier results, MLflow runs and registered versions, under a new parent run."""
    data = prepare_validated_data(config)
    parent_run_id = start_tracking(settings, config, data.split_files, data.tokenised, data.contract_reports)
    train_model, evaluate_model = cached(train, config.artifacts_dir), cached(evaluate, config.artifacts_dir)
    submitted: list[Submitted] = []
    for architecture in config.training.architectures:
        trained = train_model.submit(
            settings, architecture, config, data.split_files, data.tokenised, data.contract_reports, parent_run_id
        )
        if config.training.refit:
            # The model fitted again on train + validation replaces the one that chose its epochs.
            trained = cached(refit, config.artifacts_dir).submit(
                settings, trained, config, data.split_files, data.tokenised, parent_run_id
            )
        evaluation = evaluate_model.submit(settings, trained, data.tokenised, config.training.batch_size, config.behaviour)
        submitted.append((trained, evaluation))
    evaluated = evaluated_models(submitted)
    trained_models = [trained.result() for trained, _ in submitted]
    if config.builds_ensemble:
        combined = cached(ensemble, config.artifacts_dir)(
            settings, trained_models, config, data.split_files, data.tokenised, parent_run_id
        )
        evaluated.append(evaluate_model(settings, combined, data.tokenised, config.training.batch_size, config.behaviour))
        trained_models.append(combined)
    registration = cached(register, config.artifacts_dir)(
        settings, evaluated, data.split_files, config.promotion, parent_run_id
    )
    state = PipelineState(
        config=config, split_files=data.split_files, tokenised=data.tokenised, contract_reports=data.contract_reports,
        trained=trained_models, evaluated=evaluated, registration=registration,
    )
    return finish_tracking(settings, parent_run_id, evaluated, registration, state)


def run_sentiment_flow(
    config: PipelineConfig, settings: TrackingSettings, execution: ExecutionConfig = ExecutionConfig()
) -> RunSummary:
    """Run :func:`sentiment_flow` on the task runner ``execution`` asks for (the default: sequential, here)."""
    return run_flow_on(sentiment_flow, execution, config.artifacts_dir, settings.tracking_uri, config, settings)
