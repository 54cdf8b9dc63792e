"""The sentiment comparison table: its rows, how it renders (text, CSV, overlay figures) and how an execution's
parent run is finished with it.

Apart from the steps on purpose: no training or evaluation code imports this module, so editing how the table
renders changes no cached step's code digest (see :mod:`seqflow.core.codedigest`) and retrains nothing.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from seqflow.core.evaluation import plot_overlay_html, plot_overlay_png
from seqflow.core.executions import (  # noqa: F401 - log_execution_records, rows_as_csv, task_status_tags re-exported
    finish_execution,
    log_execution_records,
    render_comparison,
    rows_as_csv,
    summary_fields,
    task_status_tags,
)
from seqflow.core.registry import RegistrationOutcome
from seqflow.core.task_status import TaskStatus
from seqflow.core.tracking import Tracker
from seqflow.sentiment.behaviour import CHECK_TYPES, metric_name
from seqflow.sentiment.records import EvaluatedModel


@dataclass(frozen=True)
class ComparisonRow:
    architecture: str
    epochs: int
    best_val_accuracy: float
    test_accuracy: float
    roc_auc: float
    gap_at_end: float
    seconds: float
    version: str | None
    champion: bool
    # Overfitting figures (see seqflow.core.evaluation.overfitting_figures) and behavioural pass rates.
    best_epoch: int = 0
    gap_at_best: float = float("nan")
    epochs_past_best: int = 0
    behaviour: dict[str, float] = field(default_factory=dict)


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

    def render(self, compact: bool = False) -> str:
        header = (
            f"{'architecture':16} {'epochs':>6} {'best ep':>7} {'past':>4} {'best val':>8} {'test acc':>8} {'AUC':>6} "
            f"{'gap@best':>8} {'gap@end':>7} {'invar':>5} {'direc':>5} {'MFT':>5} {'seconds':>8} {'version':>7}  champion"
        )
        row_lines = []
        for row in self.rows:
            rates = " ".join(f"{row.behaviour[check]:>5.2f}" if check in row.behaviour else f"{'-':>5}" for check in CHECK_TYPES)
            # An ensemble trains no epochs of its own: no best epoch, no train-validation gap ("-", not 1 and nan).
            fitted = row.epochs > 0
            best_epoch, past = (f"{row.best_epoch:d}", f"{row.epochs_past_best:d}") if fitted else ("-", "-")
            row_lines.append(
                f"{row.architecture:16} {row.epochs:>6d} {best_epoch:>7} {past:>4} "
                f"{row.best_val_accuracy:>8.4f} {row.test_accuracy:>8.4f} {row.roc_auc:>6.3f} {_signed(row.gap_at_best):>8} "
                f"{_signed(row.gap_at_end):>7} {rates} {row.seconds:>8.1f} {row.version or '-':>7}  "
                f"{'yes' if row.champion else ''}"
            )
        notes = [
            "best ep: epoch of lowest validation loss; past: epochs trained after it; gap: train minus validation "
            "accuracy; invar/direc/MFT: behavioural pass rates (invariance, direction, minimum functionality)"
        ]
        return render_comparison(self, header, row_lines, compact, notes)


def _signed(value: float) -> str:
    """A train-validation gap with its sign, or "-" where there is none (nan: a model without a history)."""
    return "-" if math.isnan(value) else f"{value:+.3f}"


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


def row_as_flat_dict(row) -> dict[str, object]:  # noqa: ANN001 - any comparison row dataclass
    """A comparison row as flat columns; behavioural pass rates (sentiment rows) as ``behaviour_<check>_pass_rate``."""
    flat = {key: value for key, value in asdict(row).items() if key != "behaviour"}
    behaviour = getattr(row, "behaviour", None)
    if behaviour is None:
        return flat
    return flat | {metric_name(check): behaviour.get(check, float("nan")) for check in CHECK_TYPES}


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
    summary = RunSummary(
        rows=comparison_rows(evaluated, registration), **summary_fields(tracker, parent_run_id, registration, task_statuses)
    )
    best = max(evaluated, key=lambda model: model.test_metrics["accuracy"])
    # Imported here: the pipeline's declaration names this module's row type.
    from seqflow.sentiment.pipeline import SENTIMENT

    finish_execution(
        SENTIMENT, tracker, parent_run_id, summary, {"best_test_accuracy": best.test_metrics["accuracy"]},
        texts, log_more=lambda: log_overlay_figures(tracker, parent_run_id, evaluated), publish=publish,
    )
    return summary
