"""The character-model pipeline's steps after validation: plain functions that the Prefect tasks wrap.

The same shape as :mod:`seqflow.sentiment.steps` for sentiment: one parent run per execution, one child run per
architecture, versions registered all or none, and the ``champion`` alias moved by validation perplexity
(lower is better) only through the promotion gates. A step that fails marks the run it owns FAILED.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from seqflow.charlm.corpus import (
    IncomparableChampion,
    champion_vocabulary_problem,
    champion_vocabulary_refusal,
    char_baselines,
    ngram_gate,
)
from seqflow.charlm.text import (
    UNKNOWN_ID,
    CharEncodedData,
    CharSplitFiles,
    encode,
    load_char_ids,
    load_char_vocabulary,
    read_char_split,
)
from seqflow.config import CharLMConfig, CharPromotionConfig
from seqflow.core.contracts import ContractReport
from seqflow.core.evaluation import plot_learning_curves
from seqflow.core.promotion import decide_by_metric
from seqflow.sentiment.steps import (
    FINGERPRINT_TAG,
    RESUMED_FROM_EPOCH_TAG,
    RegistrationOutcome,
    apply_promotion,
    close_runs_of_dead_executions,
    log_execution_records,
    rows_as_csv,
)
from seqflow.sentiment.summary import TaskStatus, render_task_statuses
from seqflow.core.tracking import FLOW_RUN_TAG, ROLE_TAG, Tracker

logger = logging.getLogger(__name__)

# The row stored with each logged model as its input example; its prefix is the sample prefix (see
# example_prefix), so that the example is one the model accepts whatever language it was trained on.
INPUT_EXAMPLE = {"length": [40], "temperature": [0.8], "seed": [0]}
# The tag (and metric) the champion is chosen by.
SCORE_TAG = "val_perplexity"


@dataclass(frozen=True)
class TrainedCharModel:
    architecture: str
    run_id: str
    step_model_path: Path
    model_uri: str
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    seconds: float
    seconds_per_epoch: float
    parameters: int


@dataclass(frozen=True)
class EvaluatedCharModel:
    architecture: str
    run_id: str
    model_uri: str
    dataset_digest: str
    val_loss: float
    val_perplexity: float
    best_epoch: int
    epochs_run: int
    seconds: float
    parameters: int


@dataclass(frozen=True)
class CharComparisonRow:
    architecture: str
    epochs: int
    best_epoch: int
    val_loss: float
    val_perplexity: float
    parameters: int
    seconds: float
    version: str | None
    champion: bool


@dataclass(frozen=True)
class CharRunSummary:
    parent_run_id: str
    experiment_name: str
    registered_model_name: str
    rows: list[CharComparisonRow]
    decision_reason: str
    champion_version: str | None
    # What each task did in this execution (ran / cached) and why.
    tasks: list[TaskStatus] = field(default_factory=list)

    def render(self) -> str:
        header = (
            f"{'architecture':16} {'epochs':>6} {'best':>4} {'val loss':>8} {'val ppl':>8} {'params':>9} "
            f"{'seconds':>8} {'version':>7}  champion"
        )
        lines = [header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                f"{row.architecture:16} {row.epochs:>6d} {row.best_epoch:>4d} {row.val_loss:>8.4f} "
                f"{row.val_perplexity:>8.3f} {row.parameters:>9,d} {row.seconds:>8.1f} {row.version or '-':>7}  "
                f"{'yes' if row.champion else ''}"
            )
        lines += [
            "",
            f"promotion: {self.decision_reason}",
            f"champion:  {self.registered_model_name}@champion = v{self.champion_version}"
            if self.champion_version
            else "champion:  none",
            f"MLflow:    experiment {self.experiment_name!r}, parent run {self.parent_run_id}",
            *render_task_statuses(self.tasks),
        ]
        return "\n".join(lines)


def _dataset_tags(split_files: CharSplitFiles, encoded: CharEncodedData) -> dict[str, str]:
    return {
        "source": split_files.source,
        "dataset_digest": split_files.digest,
        "train_digest": split_files.digests["train"],
        "validation_digest": split_files.digests["validation"],
        "ids_digest": encoded.ids_digest,
    }


def sample_prefix(config: CharLMConfig, split_files: CharSplitFiles) -> str:
    """The configured sample prefix, or the first line of the validation text (any language)."""
    if config.sampling.prefix:
        return config.sampling.prefix
    return read_char_split(split_files, "validation").lstrip("\n").split("\n", 1)[0][:40]


def example_prefix(prefix: str, vocabulary: list[str]) -> str:
    """``prefix`` without the characters the model cannot read (the served pyfunc refuses those)."""
    known = set(vocabulary) - {vocabulary[UNKNOWN_ID]}
    return "".join(char for char in prefix if char in known)


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
              **_dataset_tags(split_files, encoded)},
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


def train_char_architecture(
    tracker: Tracker,
    architecture: str,
    config: CharLMConfig,
    split_files: CharSplitFiles,
    encoded: CharEncodedData,
    parent_run_id: str,
    flow_run_id: str | None,
) -> TrainedCharModel:
    """One child run: fit with per-epoch loss/perplexity, sample texts every few epochs, the pyfunc logged."""
    import mlflow.types
    import pandas as pd
    from mlflow.models import ModelSignature

    from seqflow.charlm.generate import STEP_MODEL_ARTIFACT, VOCABULARY_ARTIFACT, CharGenerationModel
    from seqflow.charlm.train import char_training_fingerprint, train_char_model
    from seqflow.sentiment.train import checkpoint_dir_for

    run_id = tracker.start_run(
        run_name=architecture,
        tags={ROLE_TAG: "charlm-architecture", "architecture": architecture, FLOW_RUN_TAG: flow_run_id,
              "profile": config.profile, **_dataset_tags(split_files, encoded)},
        parent_run_id=parent_run_id,
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, {"architecture": architecture, **config.to_flat_dict()})
        output_dir = encoded.encoded_dir / "models" / run_id
        vocabulary, prefix = load_char_vocabulary(encoded.vocabulary_path), sample_prefix(config, split_files)
        fingerprint = char_training_fingerprint(encoded.ids_digest, encoded.vocab_size, architecture, config.training, config.seed)
        tracker.set_tags(run_id, {FINGERPRINT_TAG: fingerprint})
        outcome = train_char_model(
            architecture,
            load_char_ids(encoded, "train"),
            load_char_ids(encoded, "validation"),
            vocabulary,
            config.training,
            config.sampling,
            prefix,
            config.seed,
            output_dir,
            on_epoch_end=tracker.epoch_logger(run_id),
            on_samples=lambda epoch, text: tracker.log_text(run_id, text, f"samples/epoch_{epoch:03d}.txt"),
            checkpoint_dir=checkpoint_dir_for(config.artifacts_dir, fingerprint) if config.training.checkpoint else None,
        )
        tracker.set_tags(run_id, {RESUMED_FROM_EPOCH_TAG: outcome.resumed_from_epoch})
        tracker.log_metrics(
            run_id,
            {"seconds_per_epoch": outcome.seconds_per_epoch, "train_seconds": outcome.seconds,
             "epochs_run": outcome.epochs_run, "best_epoch": outcome.best_epoch, "parameters": outcome.parameters},
        )
        curves = plot_learning_curves(
            outcome.history, f"{architecture}: training vs validation", output_dir / "learning_curves.png",
            metrics=("loss", "perplexity"),
        )
        tracker.log_artifact(run_id, curves, "plots")
        tracker.log_text(run_id, json.dumps(outcome.history, indent=2), "history.json")
        signature = ModelSignature(
            inputs=mlflow.types.Schema([
                mlflow.types.ColSpec("string", "prefix"), mlflow.types.ColSpec("long", "length"),
                mlflow.types.ColSpec("double", "temperature"), mlflow.types.ColSpec("long", "seed", required=False),
            ]),
            outputs=mlflow.types.Schema([mlflow.types.ColSpec("string", "text"), mlflow.types.ColSpec("string", "continuation")]),
        )
        model_uri = tracker.log_pyfunc_model(
            run_id,
            CharGenerationModel(),
            {STEP_MODEL_ARTIFACT: str(outcome.step_model_path), VOCABULARY_ARTIFACT: str(encoded.vocabulary_path)},
            signature,
            pd.DataFrame({"prefix": [example_prefix(prefix, vocabulary)], **INPUT_EXAMPLE}),
        )
    return TrainedCharModel(
        architecture=architecture,
        run_id=run_id,
        step_model_path=outcome.step_model_path,
        model_uri=model_uri,
        history=outcome.history,
        epochs_run=outcome.epochs_run,
        best_epoch=outcome.best_epoch,
        seconds=outcome.seconds,
        seconds_per_epoch=outcome.seconds_per_epoch,
        parameters=outcome.parameters,
    )


def evaluate_char_architecture(
    tracker: Tracker, trained: TrainedCharModel, encoded: CharEncodedData, config: CharLMConfig
) -> EvaluatedCharModel:
    """Score the saved step model (the file that is served) on the validation text; log and close the run."""
    import keras

    from seqflow.charlm.train import stream_loss

    with tracker.closing_on_failure(trained.run_id, finish=True):
        step_model = keras.saving.load_model(trained.step_model_path, compile=False)
        training = config.training
        val_loss = stream_loss(step_model, load_char_ids(encoded, "validation"), training.validation_streams,
                               training.validation_window)
        val_perplexity = math.exp(min(val_loss, 50.0))
        tracker.log_metrics(trained.run_id, {"best_val_loss": val_loss, "best_val_perplexity": val_perplexity})
        # The count baselines on the same validation characters, beside the network's score (issue 22).
        tracker.log_metrics(trained.run_id, char_baselines(encoded, training.validation_streams).metrics())
    return EvaluatedCharModel(
        architecture=trained.architecture,
        run_id=trained.run_id,
        model_uri=trained.model_uri,
        dataset_digest=encoded.dataset_digest,
        val_loss=val_loss,
        val_perplexity=val_perplexity,
        best_epoch=trained.best_epoch,
        epochs_run=trained.epochs_run,
        seconds=trained.seconds,
        parameters=trained.parameters,
    )


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
    # A champion of another alphabet is not scored on this text (issue 22).
    if problem := champion_vocabulary_problem(vocabulary, validation_text, encoded.unseen_share):
        raise IncomparableChampion(problem)
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
        # Issue 22: the network must beat counting, and a champion of another alphabet is not compared.
        decision = (
            ngram_gate(best.version, best.score, char_baselines(encoded, config.training.validation_streams))
            if promotion.require_beating_ngram else None
        )
        try:
            champion_score = (
                _champion_perplexity_on(tracker, champion, encoded, config)
                if champion is not None and decision is None else None
            )
        except IncomparableChampion as incomparable:
            decision = champion_vocabulary_refusal(best.version, best.score, str(champion.version),
                                                   tracker.settings.registered_model_name, str(incomparable))
        decision = decision or decide_by_metric(
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


def finish_charlm_run(
    tracker: Tracker,
    parent_run_id: str,
    evaluated: list[EvaluatedCharModel],
    registration: RegistrationOutcome,
    task_statuses: list[TaskStatus] | None = None,
    texts: dict[str, str] | None = None,
    publish: Callable[[CharRunSummary], None] | None = None,
) -> CharRunSummary:
    """Log the comparison table, what each task did (``tasks.json``) and ``texts`` (artifact file -> text, e.g.
    the execution's state for reruns) to the parent run, ``publish`` the summary elsewhere (the Prefect table
    artifact), and only then close the run FINISHED."""
    rows = [
        CharComparisonRow(
            architecture=model.architecture,
            epochs=model.epochs_run,
            best_epoch=model.best_epoch,
            val_loss=model.val_loss,
            val_perplexity=model.val_perplexity,
            parameters=model.parameters,
            seconds=model.seconds,
            version=registration.version_of(model.run_id),
            champion=registration.is_champion(model.run_id),
        )
        for model in evaluated
    ]
    summary = CharRunSummary(
        parent_run_id=parent_run_id,
        experiment_name=tracker.settings.experiment_name,
        registered_model_name=tracker.settings.registered_model_name,
        rows=rows,
        decision_reason=registration.decision_reason,
        champion_version=registration.champion_version,
        tasks=list(task_statuses or []),
    )
    # As for sentiment (steps.finish_pipeline_run): a failure here withdraws this execution's versions.
    with tracker.closing_on_failure(parent_run_id, finish=True, withdraw_versions=True):
        tracker.log_text(parent_run_id, summary.render(), "comparison.txt")
        log_execution_records(tracker, parent_run_id, summary.tasks, texts)
        tracker.log_text(parent_run_id, rows_as_csv(rows), "comparison.csv")
        tracker.log_metrics(parent_run_id, {"best_val_perplexity": min(model.val_perplexity for model in evaluated)})
        if publish is not None:
            publish(summary)
    return summary
