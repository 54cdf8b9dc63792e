"""``seqflow charlm run``: text -> contract -> character ids -> one child run per architecture -> registry."""

from __future__ import annotations

from prefect import flow

from seqflow.char_steps import CharRunSummary
from seqflow.config import CharLMConfig
from seqflow.execution import InlineTaskRunner
from seqflow.flows.sentiment import evaluated_models
from seqflow.settings import TrackingSettings
from seqflow.tasks.charlm import (
    check_char_contract,
    encode_text,
    evaluate_char,
    finish_charlm_tracking,
    load_text,
    register_char_models,
    start_charlm_tracking,
    train_char,
)
from seqflow.tasks.training import close_runs_of_failed_flow


@flow(
    name="seqflow-charlm",
    task_runner=InlineTaskRunner(),
    on_failure=[close_runs_of_failed_flow],
    on_crashed=[close_runs_of_failed_flow],
)
def charlm_flow(config: CharLMConfig, settings: TrackingSettings) -> CharRunSummary:
    """Train, evaluate and register every configured character architecture; ``settings`` should be the
    charlm ones (:meth:`TrackingSettings.for_charlm`), so the sentiment registry is never touched."""
    split_files = load_text(config.data, config.seed, config.artifacts_dir)
    contract_report = check_char_contract(split_files, config.contracts)
    encoded = encode_text(split_files, config.artifacts_dir)
    parent_run_id = start_charlm_tracking(settings, config, split_files, encoded, [contract_report])
    submitted = []
    for architecture in config.training.architectures:
        trained = train_char.submit(settings, architecture, config, split_files, encoded, parent_run_id)
        submitted.append((trained, evaluate_char.submit(settings, trained, encoded, config)))
    evaluated = evaluated_models(submitted)
    registration = register_char_models(settings, evaluated, encoded, config, parent_run_id)
    return finish_charlm_tracking(settings, parent_run_id, evaluated, registration)
