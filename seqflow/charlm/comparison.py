"""The character models' comparison table: its rows, how it renders, and how an execution's parent run is
finished with it. Apart from the steps on purpose: no training or evaluation code imports it, so editing the
table retrains nothing (see :mod:`seqflow.core.codedigest`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from seqflow.charlm.records import EvaluatedCharModel
from seqflow.core.tracking import Tracker
from seqflow.core.executions import finish_execution, render_comparison, summary_fields
from seqflow.core.records import carried_over
from seqflow.core.registry import RegistrationOutcome
from seqflow.core.task_status import TaskStatus


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
    # A mixture model's network alone and its weight λ (training.ngram_interpolation); None for a network.
    network_val_loss: float | None = None
    mixture_weight: float | None = None


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

    def render(self, compact: bool = False) -> str:
        header = (
            f"{'architecture':16} {'epochs':>6} {'best':>4} {'val loss':>8} {'val ppl':>8} {'params':>9} "
            f"{'seconds':>8} {'version':>7}  champion"
        )
        row_lines = [
            f"{row.architecture:16} {row.epochs:>6d} {row.best_epoch:>4d} {row.val_loss:>8.4f} "
            f"{row.val_perplexity:>8.3f} {row.parameters:>9,d} {row.seconds:>8.1f} {row.version or '-':>7}  "
            f"{'yes' if row.champion else ''}"
            for row in self.rows
        ]
        # Mixture models (training.ngram_interpolation): the scores above are the mixture's; the network's alone.
        notes = [
            f"{row.architecture}: the scores are its mixture with the n-gram (network weight {row.mixture_weight:.3f}); "
            f"the network alone: val loss {row.network_val_loss:.4f}, perplexity {math.exp(min(row.network_val_loss, 50.0)):.3f}"
            for row in self.rows if row.network_val_loss is not None and row.mixture_weight is not None
        ]
        notes += [""] if notes else []
        return render_comparison(self, header, row_lines, compact, notes)


def finish_charlm_run(
    tracker: Tracker, parent_run_id: str, evaluated: list[EvaluatedCharModel], registration: RegistrationOutcome,
    task_statuses: list[TaskStatus] | None = None, texts: dict[str, str] | None = None,
    publish: Callable[[CharRunSummary], None] | None = None,
) -> CharRunSummary:
    """Finish the execution with the character models' comparison table (see
    :func:`seqflow.core.executions.finish_execution`: the table, what each task did, ``texts``, ``publish``, then
    the run closed FINISHED)."""
    # A row is the evaluated model's architecture, best epoch, scores, size and time, with its version.
    rows = [
        carried_over(
            CharComparisonRow, model, epochs=model.epochs_run,
            version=registration.version_of(model.run_id), champion=registration.is_champion(model.run_id),
        )
        for model in evaluated
    ]
    summary = CharRunSummary(rows=rows, **summary_fields(tracker, parent_run_id, registration, task_statuses))
    # Imported here: the pipeline's declaration names this module's row type.
    from seqflow.charlm.pipeline import CHARLM

    finish_execution(
        CHARLM, tracker, parent_run_id, summary,
        {"best_val_perplexity": min(model.val_perplexity for model in evaluated)}, texts, publish=publish,
    )
    return summary
