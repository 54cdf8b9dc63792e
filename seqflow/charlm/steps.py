"""The character-model pipeline's tracking steps around the trained models: opening an execution's parent run
and registering and promoting the evaluated models.

The same shape as :mod:`seqflow.sentiment.steps`: one parent run per execution, versions registered all or
none, and the ``champion`` alias moved by validation perplexity (lower is better) only through the promotion
gates. The train and evaluate steps are the Prefect tasks of :mod:`seqflow.tasks.charlm`; what they return is in
:mod:`seqflow.charlm.records` (re-exported here), the comparison table in :mod:`seqflow.charlm.comparison`.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel, dataset_tags  # noqa: F401 - re-exported
from seqflow.charlm.records import dataset_tags as _dataset_tags  # noqa: F401 - read by seqflow.core.state
from seqflow.charlm.text import CharEncodedData, CharSplitFiles, encode, load_char_ids, load_char_vocabulary
from seqflow.config import CharLMConfig, CharPromotionConfig
from seqflow.core.promotion import decide_by_metric
from seqflow.core.tracking import FLOW_RUN_TAG, ROLE_TAG, Tracker
from seqflow.core.contracts import ContractReport
from seqflow.sentiment.steps import RegistrationOutcome, apply_promotion, close_runs_of_dead_executions

logger = logging.getLogger(__name__)

# The tag (and metric) the champion is chosen by.
SCORE_TAG = "val_perplexity"


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
    close_runs_of_dead_executions(tracker)
    run_id = tracker.start_run(
        run_name=f"charlm-{config.profile}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={ROLE_TAG: "charlm-pipeline", FLOW_RUN_TAG: flow_run_id, "profile": config.profile,
              **dataset_tags(split_files, encoded)},
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, config.to_flat_dict())
        tracker.log_metrics(
            run_id,
            {f"chars_{split}": chars for split, chars in split_files.chars.items()}
            | {"vocab_size": encoded.vocab_size, "unseen_share_validation": encoded.unseen_share},
        )
        for report in contract_reports:
            tracker.log_artifact(run_id, report.report_dir, f"contracts/{report.contract}")
    return run_id


def _champion_perplexity_on(tracker: Tracker, champion, encoded: CharEncodedData, config: CharLMConfig) -> float:  # noqa: ANN001
    """The champion's validation perplexity on this execution's validation text: from its tags if measured on
    the same data (same digest), otherwise by scoring the champion's own step model and vocabulary on it now."""
    import keras

    from seqflow.charlm.train import stream_loss

    tags = champion.tags or {}
    if tags.get("dataset_digest") == encoded.dataset_digest and SCORE_TAG in tags:
        return float(tags[SCORE_TAG])
    logger.info("champion v%s was measured on other data; scoring it on this validation text", champion.version)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = tracker.download_model_artifacts(
            f"models:/{tracker.settings.registered_model_name}/{champion.version}", Path(scratch)
        )
        # The pyfunc keeps its artifact files under artifacts/: the step model (.keras) and the vocabulary (.json).
        step_model = keras.saving.load_model(next((model_dir / "artifacts").rglob("*.keras")), compile=False)
        vocabulary = load_char_vocabulary(next((model_dir / "artifacts").rglob("*.json")))
    # This execution's validation text (characters unseen in its training text read back as the unknown
    # marker), encoded with the champion's vocabulary.
    own_vocabulary = load_char_vocabulary(encoded.vocabulary_path)
    validation_text = "".join(own_vocabulary[i] for i in load_char_ids(encoded, "validation"))
    ids = encode(validation_text, vocabulary)
    loss = stream_loss(step_model, ids, config.training.validation_streams, config.training.validation_window)
    return math.exp(min(loss, 50.0))


def register_and_promote_charlm(
    tracker: Tracker,
    evaluated: list[EvaluatedCharModel],
    encoded: CharEncodedData,
    config: CharLMConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every evaluated model, then move ``champion`` to the lowest validation perplexity if it passes
    the gates. All or nothing: if anything fails before the alias moves, this execution's versions are deleted."""
    promotion: CharPromotionConfig = config.promotion
    candidates = [
        (
            model.architecture,
            model.run_id,
            model.model_uri,
            {
                "architecture": model.architecture,
                "run_id": model.run_id,
                "parent_run_id": parent_run_id,
                "dataset_digest": model.dataset_digest,
                "val_loss": f"{model.val_loss:.6f}",
                SCORE_TAG: f"{model.val_perplexity:.6f}",
            },
        )
        for model in evaluated
    ]
    versions = tracker.register_versions(candidates, score_tag=SCORE_TAG)
    try:
        best = min(versions, key=lambda version: version.score if not np.isnan(version.score) else math.inf)
        champion = tracker.champion()
        champion_score = _champion_perplexity_on(tracker, champion, encoded, config) if champion is not None else None
        decision = decide_by_metric(
            best.version, best.score, str(champion.version) if champion is not None else None, champion_score,
            metric="validation perplexity", higher_is_better=False, bound=promotion.max_val_perplexity,
            min_improvement=promotion.min_improvement, data="validation text", bound_gate="max_val_perplexity",
        )
        previous_champion = str(champion.version) if champion is not None else None
        apply_promotion(tracker, decision, parent_run_id, "seqflow charlm run", previous_champion)
    except BaseException:
        tracker.delete_versions(versions)
        raise
    return RegistrationOutcome.now(tracker, versions, decision)


