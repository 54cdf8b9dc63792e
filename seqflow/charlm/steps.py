"""The character-model pipeline's tracking steps around the trained models: opening an execution's parent run
and registering and promoting the evaluated models, through the shared core (:mod:`seqflow.core.executions`,
:mod:`seqflow.core.registry`) with this pipeline's declaration (:data:`seqflow.charlm.pipeline.CHARLM`).

One parent run per execution, versions registered all or none, and the ``champion`` alias moved by validation
perplexity (lower is better) only through the promotion gates. The train and evaluate steps are the Prefect
tasks of :mod:`seqflow.tasks.charlm`; what they return is in :mod:`seqflow.charlm.records` (re-exported here),
the comparison table in :mod:`seqflow.charlm.comparison`.
"""

from __future__ import annotations

import logging

from seqflow.charlm.baselines import BaselineScores
from seqflow.charlm.corpus import char_baselines, ngram_gate
from seqflow.charlm.pipeline import CHARLM, SCORE_TAG, validation_text_of  # noqa: F401 - SCORE_TAG re-exported
from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel, dataset_tags  # noqa: F401 - re-exported
from seqflow.charlm.text import CHAR_SPLITS, CharEncodedData, CharSplitFiles
from seqflow.core.lineage import split_inputs
from seqflow.charlm.config import CharLMConfig
from seqflow.core.contracts import ContractReport
from seqflow.core.executions import start_execution
from seqflow.core.registry import Candidate, RegistrationOutcome, champion_score_on, register_and_promote
from seqflow.core.tracking import Tracker

logger = logging.getLogger(__name__)


def start_charlm_run(
    tracker: Tracker,
    config: CharLMConfig,
    split_files: CharSplitFiles,
    encoded: CharEncodedData,
    contract_reports: list[ContractReport],
    flow_run_id: str | None,
) -> str:
    """Create the parent run of one execution, with params, data tags and the contract results.

    First, like ``seqflow run``, the runs of this experiment that a killed earlier execution on this host left
    RUNNING are closed as KILLED and the versions it registered are withdrawn (a cached task never reuses an
    unfinished run either way).
    """
    return start_execution(
        CHARLM, tracker, "charlm-", config.profile, flow_run_id, dataset_tags(split_files, encoded),
        config.to_flat_dict(),
        {f"chars_{split}": chars for split, chars in split_files.chars.items()}
        | {"vocab_size": encoded.vocab_size, "unseen_share_validation": encoded.unseen_share},
        contract_reports,
        split_inputs(split_files, CHAR_SPLITS, "text"),
    )


def _validation_text(encoded: CharEncodedData, config: CharLMConfig):  # noqa: ANN202 - a ValidationText
    return validation_text_of(encoded, config.training.validation_streams, config.training.validation_window)


def _champion_perplexity_on(tracker: Tracker, champion, encoded: CharEncodedData, config: CharLMConfig) -> float:  # noqa: ANN001
    """The champion's validation perplexity on this execution's validation text: from its tags if measured on
    the same data (same digest), otherwise by scoring the champion's own step model and vocabulary on it now."""
    return champion_score_on(CHARLM, tracker, champion, encoded.dataset_digest, lambda: _validation_text(encoded, config))


def register_and_promote_charlm(
    tracker: Tracker,
    evaluated: list[EvaluatedCharModel],
    encoded: CharEncodedData,
    config: CharLMConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every evaluated model, then move ``champion`` to the lowest validation perplexity if it passes
    the gates, all or nothing (see :func:`seqflow.core.registry.register_and_promote`)."""
    candidates = [
        Candidate.of(model, {"val_loss": f"{model.val_loss:.6f}", SCORE_TAG: f"{model.val_perplexity:.6f}"})
        for model in evaluated
    ]
    # The network must beat counting: a model no better than a Kneser-Ney n-gram of the same text is not promoted.
    # A mixture model (training.ngram_interpolation) must beat it by promotion.mixture_min_gain.
    margin = config.promotion.mixture_min_gain if config.training.ngram_interpolation else None
    ngram_bar = (
        (lambda best: ngram_gate(best.version, best.score, _baselines(evaluated, encoded, config), margin))
        if config.promotion.require_beating_ngram else None
    )
    return register_and_promote(
        CHARLM, tracker, candidates, config.promotion, parent_run_id, lambda: _validation_text(encoded, config),
        challenger_gate=ngram_bar,
    )


def _baselines(evaluated: list[EvaluatedCharModel], encoded: CharEncodedData, config: CharLMConfig) -> BaselineScores:
    """The count baselines the evaluate step scored on this validation text (every model of an execution has the
    same ones); fitted again only for records written before evaluate carried them (a rerun of an old execution),
    which costs an order search and a Kneser-Ney fit (3 s on 2M characters, idle 2-core machine)."""
    carried = next((model.baselines for model in evaluated if model.baselines is not None), None)
    return carried if carried is not None else char_baselines(encoded, config.training.validation_streams)
