"""Tasks of ``seqflow charlm run``: thin wrappers around :mod:`seqflow.charlm.text`, :mod:`seqflow.charlm.contracts`
and :mod:`seqflow.charlm.steps`.

Every task takes and returns paths, digests and run ids (CharSplitFiles, CharEncodedData, ...), never live
text or models, so the cache of :mod:`seqflow.core.caching`, keyed on its inputs' digests, can skip it, and any
worker can run it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from seqflow.core.caching import task_statuses
from seqflow.charlm.contracts import validate_char_splits
from seqflow.charlm.text import CharEncodedData, CharSplitFiles, encode_char_splits, write_char_splits
from seqflow.charlm.sources import load_char_source
from seqflow.charlm.steps import (
    CharRunSummary,
    EvaluatedCharModel,
    TrainedCharModel,
    evaluate_char_architecture,
    finish_charlm_run,
    register_and_promote_charlm,
    start_charlm_run,
    train_char_architecture,
)
from seqflow.config import CharContractConfig, CharDataConfig, CharLMConfig
from seqflow.core.contracts import ContractReport, raise_on_failure
from seqflow.core.state import STATE_ARTIFACT, CharLMState, state_to_json
from seqflow.core.settings import TrackingSettings
from seqflow.sentiment.steps import RegistrationOutcome
from seqflow.tasks.retry import retry_unless_bad_input
from seqflow.core.tracking import Tracker


@task(name="load-text", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input)
def load_text(data_config: CharDataConfig, seed: int, artifacts_dir: str) -> CharSplitFiles:
    """Load the text source, split it into train/validation blocks (seeded) and write both with digests."""
    source = load_char_source(data_config)
    return write_char_splits(source, data_config, seed, Path(artifacts_dir))


@task(name="contracts-char-text")
def check_char_contract(split_files: CharSplitFiles, contracts: CharContractConfig) -> ContractReport:
    """Validate the text; a failure stops the flow before anything is encoded or trained."""
    return raise_on_failure(validate_char_splits(split_files, contracts))


@task(name="encode-chars")
def encode_text(split_files: CharSplitFiles, artifacts_dir: str, min_char_count: int | None = None) -> CharEncodedData:
    """Vocabulary from the training text (rare characters read as unknown); both splits as character ids."""
    return encode_char_splits(split_files, Path(artifacts_dir), min_char_count)


@task(name="start-tracking-charlm")
def start_charlm_tracking(
    settings: TrackingSettings,
    config: CharLMConfig,
    split_files: CharSplitFiles,
    encoded: CharEncodedData,
    contract_reports: list[ContractReport],
) -> str:
    return start_charlm_run(Tracker(settings), config, split_files, encoded, contract_reports, flow_run.get_id())


@task(name="train-charlm", task_run_name="train-{architecture}")
def train_char(
    settings: TrackingSettings,
    architecture: str,
    config: CharLMConfig,
    split_files: CharSplitFiles,
    encoded: CharEncodedData,
    parent_run_id: str,
) -> TrainedCharModel:
    """Fit one character architecture in its own child run."""
    return train_char_architecture(
        Tracker(settings), architecture, config, split_files, encoded, parent_run_id, flow_run.get_id()
    )


@task(name="evaluate-charlm", task_run_name="evaluate-{trained.architecture}")
def evaluate_char(
    settings: TrackingSettings, trained: TrainedCharModel, encoded: CharEncodedData, config: CharLMConfig
) -> EvaluatedCharModel:
    """Score the saved step model on the validation text and close the child run."""
    return evaluate_char_architecture(Tracker(settings), trained, encoded, config)


@task(name="register-charlm")
def register_char_models(
    settings: TrackingSettings,
    evaluated: list[EvaluatedCharModel],
    encoded: CharEncodedData,
    config: CharLMConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every model and move the champion alias if the lowest perplexity passes the gates."""
    return register_and_promote_charlm(Tracker(settings), evaluated, encoded, config, parent_run_id)


@task(name="finish-tracking-charlm")
def finish_charlm_tracking(
    settings: TrackingSettings,
    parent_run_id: str,
    evaluated: list[EvaluatedCharModel],
    registration: RegistrationOutcome,
    state: CharLMState | None = None,
) -> CharRunSummary:
    """Log the comparison table, what each task did and why, and the execution's state (for ``seqflow charlm
    rerun``) to the parent run, publish the table in Prefect, then close the run."""
    statuses = task_statuses(state.config.artifacts_dir, flow_run.get_id()) if state is not None else []
    texts = {STATE_ARTIFACT: state_to_json(state)} if state is not None else {}
    return finish_charlm_run(
        Tracker(settings), parent_run_id, evaluated, registration, statuses, texts, publish=publish_charlm_table
    )


def publish_charlm_table(summary: CharRunSummary) -> None:
    """The comparison table as a Prefect table artifact of the flow run."""
    create_table_artifact(
        key="charlm-comparison",
        table=[
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
        description=f"MLflow parent run {summary.parent_run_id}; promotion: {summary.decision_reason}",
    )
