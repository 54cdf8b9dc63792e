"""The character-model pipeline's steps after validation: plain functions that the Prefect tasks wrap.

The same shape as :mod:`seqflow.sentiment.steps` for sentiment: one parent run per execution, one child run per
architecture, versions registered all or none, and the ``champion`` alias moved by validation perplexity
(lower is better) only through the promotion gates. A step that fails marks the run it owns FAILED.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

from seqflow.charlm.text import (
    UNKNOWN_ID,
    CharEncodedData,
    CharSplitFiles,
    load_char_ids,
    load_char_vocabulary,
    read_char_split,
)
from seqflow.config import CharLMConfig
from seqflow.sentiment.contracts import ContractReport
from seqflow.core.evaluation import plot_learning_curves
from seqflow.charlm.pipeline import CHARLM, MAX_LOSS, SCORE_TAG, validation_text_of
from seqflow.charlm.records import CharComparisonRow, EvaluatedCharModel, TrainedCharModel
from seqflow.core.registry import Candidate, RegistrationOutcome, champion_score_on, register_and_promote
from seqflow.core.executions import (
    FINGERPRINT_TAG,
    RESUMED_FROM_EPOCH_TAG,
    finish_execution,
    start_child_run,
    start_execution,
)
from seqflow.core.tracking import Tracker
from seqflow.sentiment.summary import TaskStatus, render_task_statuses

logger = logging.getLogger(__name__)

# The row stored with each logged model as its input example; its prefix is the sample prefix (see
# example_prefix), so that the example is one the model accepts whatever language it was trained on.
INPUT_EXAMPLE = {"length": [40], "temperature": [0.8], "seed": [0]}


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
    return start_execution(
        CHARLM, tracker, "charlm-", config.profile, flow_run_id, _dataset_tags(split_files, encoded),
        config.to_flat_dict(),
        {f"chars_{split}": chars for split, chars in split_files.chars.items()}
        | {"vocab_size": encoded.vocab_size, "unseen_share_validation": encoded.unseen_share},
        contract_reports,
    )


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
    import pandas as pd

    from seqflow.charlm.generate import STEP_MODEL_ARTIFACT, VOCABULARY_ARTIFACT
    from seqflow.charlm.train import char_training_fingerprint, train_char_model
    from seqflow.sentiment.train import checkpoint_dir_for

    run_id = start_child_run(
        CHARLM, tracker, architecture, parent_run_id, flow_run_id, config.profile, _dataset_tags(split_files, encoded)
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
        model_uri = tracker.log_pyfunc_model(
            run_id,
            CHARLM.pyfunc.python_model(),
            {STEP_MODEL_ARTIFACT: str(outcome.step_model_path), VOCABULARY_ARTIFACT: str(encoded.vocabulary_path)},
            CHARLM.pyfunc.signature(),
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
        val_perplexity = math.exp(min(val_loss, MAX_LOSS))
        tracker.log_metrics(trained.run_id, {"best_val_loss": val_loss, "best_val_perplexity": val_perplexity})
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
    return champion_score_on(CHARLM, tracker, champion, encoded.dataset_digest, lambda: _validation_text(encoded, config))


def _validation_text(encoded: CharEncodedData, config: CharLMConfig):  # noqa: ANN202 - a ValidationText
    return validation_text_of(encoded, config.training.validation_streams, config.training.validation_window)


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
        Candidate(
            model.architecture,
            model.run_id,
            model.model_uri,
            model.dataset_digest,
            {"val_loss": f"{model.val_loss:.6f}", SCORE_TAG: f"{model.val_perplexity:.6f}"},
        )
        for model in evaluated
    ]
    return register_and_promote(
        CHARLM, tracker, candidates, config.promotion, parent_run_id, lambda: _validation_text(encoded, config)
    )


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
    best_perplexity = min((model.val_perplexity for model in evaluated), default=float("nan"))
    finish_execution(CHARLM, tracker, parent_run_id, summary, {"best_val_perplexity": best_perplexity}, texts, publish=publish)
    return summary
