"""The sentiment pipeline's steps after validation: plain functions that the Prefect tasks wrap.

Each step takes explicit inputs (paths, digests, run ids, config slices), does one thing, and returns a small
frozen record. MLflow runs are always closed: a step that fails marks the run it owns FAILED before raising.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from seqflow.sentiment.behaviour import CHECK_TYPES, describe_failures, metric_name, pass_rates, pyfunc_predictor, run_behaviour_checks
from seqflow.config import BehaviourConfig, PipelineConfig, PromotionConfig, TrainingConfig
from seqflow.sentiment.contracts import ContractReport
from seqflow.sentiment.datasets import SplitFiles
from seqflow.core.evaluation import (
    classification_metrics,
    overfitting_figures,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_overlay_html,
    plot_overlay_png,
)
from seqflow.core.registry import Candidate, RegistrationOutcome, champion_score_on
from seqflow.core.registry import register_and_promote as register_and_promote_any
from seqflow.core.executions import (  # noqa: F401 - the tags and helpers are re-exported for earlier callers
    FINGERPRINT_TAG,
    RESUMED_FROM_EPOCH_TAG,
    finish_execution,
    log_execution_records,
    rows_as_csv,
    start_child_run,
    start_execution,
    task_status_tags,
)
from seqflow.core.runs import close_runs_of_dead_executions  # noqa: F401 - re-exported for earlier callers
from seqflow.core.tracking import Tracker
from seqflow.sentiment.pipeline import SENTIMENT, log_serving_model
from seqflow.sentiment.records import ComparisonRow, EvaluatedModel, TrainedModel, row_as_flat_dict  # noqa: F401
from seqflow.sentiment.summary import TaskStatus, render_task_statuses
from seqflow.sentiment.tokenise import TokenisedData, load_arrays, load_vocabulary
from seqflow.sentiment.train import (
    EmbeddingSource,
    checkpoint_dir_for,
    export_serving_model,
    read_embedding_source,
    train_classifier,
    training_fingerprint,
)

logger = logging.getLogger(__name__)

# Reviews stored with each logged model as its input example.
INPUT_EXAMPLE_TEXTS = ["A moving, beautifully acted film.", "Dull plot and wooden acting; I walked out."]


@dataclass(frozen=True)
class RunSummary:
    parent_run_id: str
    experiment_name: str
    registered_model_name: str
    rows: list[ComparisonRow]
    decision_reason: str
    champion_version: str | None
    extra: dict[str, str] = field(default_factory=dict)
    # What each task did in this execution (ran / cached) and why.
    tasks: list[TaskStatus] = field(default_factory=list)

    def render(self) -> str:
        header = (
            f"{'architecture':16} {'epochs':>6} {'best ep':>7} {'past':>4} {'best val':>8} {'test acc':>8} {'AUC':>6} "
            f"{'gap@best':>8} {'gap@end':>7} {'invar':>5} {'direc':>5} {'MFT':>5} {'seconds':>8} {'version':>7}  champion"
        )
        lines = [header, "-" * len(header)]
        for row in self.rows:
            rates = " ".join(f"{row.behaviour.get(check, float('nan')):>5.2f}" for check in CHECK_TYPES)
            lines.append(
                f"{row.architecture:16} {row.epochs:>6d} {row.best_epoch:>7d} {row.epochs_past_best:>4d} "
                f"{row.best_val_accuracy:>8.4f} {row.test_accuracy:>8.4f} {row.roc_auc:>6.3f} {row.gap_at_best:>+8.3f} "
                f"{row.gap_at_end:>+7.3f} {rates} {row.seconds:>8.1f} {row.version or '-':>7}  "
                f"{'yes' if row.champion else ''}"
            )
        lines.append("")
        lines.append(
            "best ep: epoch of lowest validation loss; past: epochs trained after it; gap: train minus validation "
            "accuracy; invar/direc/MFT: behavioural pass rates (invariance, direction, minimum functionality)"
        )
        lines.append(f"promotion: {self.decision_reason}")
        lines.append(f"champion:  {self.registered_model_name}@champion = v{self.champion_version}" if self.champion_version else "champion:  none")
        lines.append(f"MLflow:    experiment {self.experiment_name!r}, parent run {self.parent_run_id}")
        lines.extend(render_task_statuses(self.tasks))
        return "\n".join(lines)


def _dataset_tags(split_files: SplitFiles, tokenised: TokenisedData) -> dict[str, str]:
    return {
        "source": split_files.source,
        "dataset_digest": split_files.digest,
        "train_digest": split_files.digests["train"],
        "validation_digest": split_files.digests["validation"],
        "test_digest": split_files.digests["test"],
        "array_digest": tokenised.array_digest,
    }


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
        SENTIMENT, tracker, "", config.profile, flow_run_id, _dataset_tags(split_files, tokenised), config.to_flat_dict(),
        {f"rows_{split}": rows for split, rows in split_files.rows.items()}
        | {f"oov_rate_{split}": rate for split, rate in tokenised.oov_rate.items()}
        | {"vocab_size": tokenised.vocab_size},
        contract_reports,
    )


def warm_start_source(tracker: Tracker, training: TrainingConfig, download_dir: Path) -> EmbeddingSource | None:
    """The registered model whose embedding initialises this one, when training.warm_start_model_uri is set."""
    if training.warm_start_model_uri is None:
        return None
    serving_path = tracker.download_serving_model(training.warm_start_model_uri, download_dir)
    return read_embedding_source(serving_path, training.warm_start_model_uri)


def train_architecture(
    tracker: Tracker,
    architecture: str,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
    parent_run_id: str,
    flow_run_id: str | None,
) -> TrainedModel:
    """One child run: fit with per-epoch metrics, learning curves, and the raw-text model logged."""
    training: TrainingConfig = config.training
    run_id = start_child_run(
        SENTIMENT, tracker, architecture, parent_run_id, flow_run_id, config.profile, _dataset_tags(split_files, tokenised)
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, config.architecture_params(architecture))
        for report in contract_reports:
            tracker.log_artifact(run_id, report.results_path, "contracts")
        output_dir = tokenised.tokenised_dir / "models" / run_id
        vocabulary = load_vocabulary(tokenised.vocabulary_path)
        fingerprint = training_fingerprint(tokenised.array_digest, tokenised.vocab_size, architecture, training, config.seed)
        tracker.set_tags(run_id, {FINGERPRINT_TAG: fingerprint})
        outcome = train_classifier(
            architecture,
            load_arrays(tokenised),
            tokenised.vocab_size,
            training,
            config.seed,
            output_dir,
            on_epoch_end=tracker.epoch_logger(run_id),
            vocabulary=vocabulary,
            warm_start=warm_start_source(tracker, training, output_dir / "warm_start"),
            checkpoint_dir=checkpoint_dir_for(config.artifacts_dir, fingerprint) if training.checkpoint else None,
        )
        tracker.set_tags(run_id, {RESUMED_FROM_EPOCH_TAG: outcome.resumed_from_epoch})
        tracker.log_metrics(run_id, {"seconds_per_epoch": outcome.seconds_per_epoch, "train_seconds": outcome.seconds})
        curves = plot_learning_curves(outcome.history, f"{architecture}: training vs validation", output_dir / "learning_curves.png")
        tracker.log_artifact(run_id, curves, "plots")
        tracker.log_text(run_id, json.dumps(outcome.history, indent=2), "history.json")
        serving_path = export_serving_model(
            outcome.classifier_path,
            vocabulary,
            tokenised.max_length,
            tokenised.padding,
            tokenised.truncation,
            output_dir / f"{architecture}_serving.keras",
        )
        model_uri = log_serving_model(tracker, run_id, serving_path, INPUT_EXAMPLE_TEXTS)
    return TrainedModel(
        architecture=architecture,
        run_id=run_id,
        classifier_path=outcome.classifier_path,
        model_uri=model_uri,
        history=outcome.history,
        epochs_run=outcome.epochs_run,
        seconds=outcome.seconds,
        seconds_per_epoch=outcome.seconds_per_epoch,
    )


def evaluate_architecture(
    tracker: Tracker, trained: TrainedModel, tokenised: TokenisedData, batch_size: int, behaviour: BehaviourConfig
) -> EvaluatedModel:
    """Score the test split once; log test metrics, overfitting figures, behavioural pass rates of the logged
    serving model and the confusion matrix; close the run."""
    import keras

    import seqflow.core.optimizers  # noqa: F401 - registers LazyAdam before loading a classifier compiled with it

    with tracker.closing_on_failure(trained.run_id, finish=True):
        arrays = load_arrays(tokenised)
        classifier = keras.saving.load_model(trained.classifier_path)
        probabilities = classifier.predict(arrays["x_test"], batch_size=batch_size, verbose=0)
        metrics = classification_metrics(probabilities, arrays["y_test"])
        overfitting = overfitting_figures(trained.history)
        # The behavioural checks score raw text with the model exactly as logged (and as it would be served).
        behaviour_results = run_behaviour_checks(pyfunc_predictor(tracker.load_pyfunc(trained.model_uri)), behaviour)
        behaviour_rates = pass_rates(behaviour_results)
        tracker.log_metrics(
            trained.run_id,
            {f"test_{key}": value for key, value in metrics.items()}
            | overfitting
            | {metric_name(check): rate for check, rate in behaviour_rates.items()},
        )
        tracker.log_text(
            trained.run_id,
            json.dumps({"pass_rates": behaviour_rates, "failures": describe_failures(behaviour_results).splitlines()}, indent=2),
            "behaviour.json",
        )
        matrix = plot_confusion_matrix(
            metrics, f"{trained.architecture}: test split", trained.classifier_path.parent / "confusion_matrix.png"
        )
        tracker.log_artifact(trained.run_id, matrix, "plots")
    return EvaluatedModel(
        architecture=trained.architecture,
        run_id=trained.run_id,
        model_uri=trained.model_uri,
        dataset_digest=tokenised.dataset_digest,
        test_metrics=metrics,
        overfitting=overfitting,
        epochs_run=trained.epochs_run,
        seconds=trained.seconds,
        seconds_per_epoch=trained.seconds_per_epoch,
        history=trained.history,
        behaviour=behaviour_rates,
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
    candidates = [
        Candidate(
            model.architecture,
            model.run_id,
            model.model_uri,
            model.dataset_digest,
            {
                **{f"test_{key}": f"{value:.6f}" for key, value in model.test_metrics.items()},
                "test_accuracy": f"{model.test_metrics['accuracy']:.6f}",
            },
        )
        for model in evaluated
    ]
    return register_and_promote_any(
        SENTIMENT, tracker, candidates, promotion, parent_run_id, lambda: split_files.test_path
    )


def comparison_rows(evaluated: list[EvaluatedModel], registration: RegistrationOutcome) -> list[ComparisonRow]:
    return [
        ComparisonRow(
            architecture=model.architecture,
            epochs=model.epochs_run,
            best_val_accuracy=model.overfitting.get("best_val_accuracy", float("nan")),
            test_accuracy=model.test_metrics["accuracy"],
            roc_auc=model.test_metrics["roc_auc"],
            gap_at_end=model.overfitting.get("gap_at_end", float("nan")),
            seconds=model.seconds,
            version=registration.version_of(model.run_id),
            champion=registration.is_champion(model.run_id),
            best_epoch=int(model.overfitting.get("best_epoch", 0)),
            gap_at_best=model.overfitting.get("gap_at_best", float("nan")),
            epochs_past_best=int(model.overfitting.get("epochs_past_best", 0)),
            behaviour=dict(model.behaviour),
        )
        for model in evaluated
    ]


def log_overlay_figures(tracker: Tracker, parent_run_id: str, evaluated: list[EvaluatedModel]) -> None:
    """Every architecture's training and validation curves on shared axes, as a PNG and an interactive,
    self-contained HTML page, under ``plots/`` of the parent run."""
    histories = {model.architecture: model.history for model in evaluated if model.history}
    if not histories:
        return
    title = f"{tracker.settings.experiment_name}: every architecture"
    with tempfile.TemporaryDirectory() as scratch:
        plot_overlay_png(histories, title, Path(scratch) / "overlay_learning_curves.png")
        plot_overlay_html(histories, title, Path(scratch) / "overlay_learning_curves.html")
        tracker.log_artifact(parent_run_id, Path(scratch), "plots")


def finish_pipeline_run(
    tracker: Tracker,
    parent_run_id: str,
    evaluated: list[EvaluatedModel],
    registration: RegistrationOutcome,
    task_statuses: list[TaskStatus] | None = None,
    texts: dict[str, str] | None = None,
    publish: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Log the comparison table, what each task did (``tasks.json``) and ``texts`` (artifact file -> text, e.g.
    the execution's state for reruns) to the parent run, ``publish`` the summary elsewhere (the Prefect table
    artifact), and only then close the run FINISHED."""
    rows = comparison_rows(evaluated, registration)
    task_statuses = list(task_statuses or [])
    summary = RunSummary(
        parent_run_id=parent_run_id,
        experiment_name=tracker.settings.experiment_name,
        registered_model_name=tracker.settings.registered_model_name,
        rows=rows,
        decision_reason=registration.decision_reason,
        champion_version=registration.champion_version,
        tasks=task_statuses,
    )
    best_accuracy = max((model.test_metrics["accuracy"] for model in evaluated), default=float("nan"))
    finish_execution(
        SENTIMENT, tracker, parent_run_id, summary, {"best_test_accuracy": best_accuracy}, texts,
        log_more=lambda: log_overlay_figures(tracker, parent_run_id, evaluated), publish=publish,
    )
    return summary
