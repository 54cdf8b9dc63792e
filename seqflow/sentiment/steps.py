"""The sentiment pipeline's tracking steps around the trained models: opening an execution's parent run
(closing what dead executions left behind) and registering and promoting the evaluated models, both through
the shared core (:mod:`seqflow.core.executions`, :mod:`seqflow.core.registry`) with this pipeline's declaration.

The train and evaluate steps are the Prefect tasks of :mod:`seqflow.tasks.sentiment`; what they return is in
:mod:`seqflow.sentiment.records` (re-exported here for earlier imports), the comparison table in
:mod:`seqflow.sentiment.comparison`. MLflow runs are always closed: a step that fails marks the run it owns
FAILED before raising.
"""

from __future__ import annotations

import logging

import pandas

from seqflow.sentiment.config import PipelineConfig, PromotionConfig
from seqflow.core.contracts import ContractReport
from seqflow.core.executions import start_execution
from seqflow.core.registry import Candidate, RegistrationOutcome, champion_score_on  # noqa: F401 - re-exported
from seqflow.core.registry import register_and_promote as register_and_promote_any
from seqflow.core.runs import close_runs_of_dead_executions  # noqa: F401 - re-exported for earlier callers
from seqflow.core.tracking import Tracker
from seqflow.core.lineage import split_inputs
from seqflow.sentiment.datasets import SPLITS, SplitFiles
from seqflow.sentiment.pipeline import SENTIMENT
from seqflow.sentiment.records import (  # noqa: F401 - re-exported: imported from here before the split
    FINGERPRINT_TAG,
    INPUT_EXAMPLE_TEXTS,
    RESUMED_FROM_EPOCH_TAG,
    EvaluatedModel,
    TrainedModel,
    dataset_tags,
)
from seqflow.sentiment.tokenise import TokenisedData

logger = logging.getLogger(__name__)


def start_pipeline_run(
    tracker: Tracker,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
    flow_run_id: str | None,
) -> str:
    """Create the parent run of one pipeline execution, with params, data tags and contract results (after the
    dead-owner clean-up: see :func:`seqflow.core.executions.start_execution`)."""
    return start_execution(
        SENTIMENT, tracker, "", config.profile, flow_run_id, dataset_tags(split_files, tokenised), config.to_flat_dict(),
        {f"rows_{split}": rows for split, rows in split_files.rows.items()}
        | {f"oov_rate_{split}": rate for split, rate in tokenised.oov_rate.items()}
        | {"vocab_size": tokenised.vocab_size},
        contract_reports,
        split_inputs(split_files, SPLITS, "reviews", read_frame=pandas.read_parquet),
    )


def _champion_accuracy_on(tracker: Tracker, champion, split_files: SplitFiles) -> float:  # noqa: ANN001
    """The champion's test accuracy on this execution's test split (see :func:`seqflow.core.registry.champion_score_on`)."""
    return champion_score_on(SENTIMENT, tracker, champion, split_files.digest, lambda: split_files.test_path)


def register_and_promote(
    tracker: Tracker,
    evaluated: list[EvaluatedModel],
    split_files: SplitFiles,
    promotion: PromotionConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every evaluated model, then move ``champion`` to the best test accuracy if it passes the gates,
    all or nothing (see :func:`seqflow.core.registry.register_and_promote`)."""
    # The score the champion is chosen (and filtered) by is the one metric kept as a version tag; the others
    # (ROC AUC, F1, loss, the confusion-matrix cells) are run metrics, linked to the logged model, and on the card.
    candidates = [Candidate.of(model, {"test_accuracy": f"{model.test_metrics['accuracy']:.6f}"}) for model in evaluated]
    return register_and_promote_any(
        SENTIMENT, tracker, candidates, promotion, parent_run_id, lambda: split_files.test_path
    )
