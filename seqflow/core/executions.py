"""One execution of any pipeline in MLflow: its parent run opened (after the dead-owner clean-up), a child run
per architecture (:func:`seqflow.core.training_runs.start_architecture_run`), and the parent closed with the
comparison table and what each task did, all or nothing.

The pipeline supplies only what is its own: its tags, params and metrics, its rows, its summary and any extra
figures; the run roles come from its declaration (:class:`seqflow.core.pipeline.Pipeline`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable, Sequence

from seqflow.core.pipeline import Pipeline
from seqflow.core.run_links import publish_links
from seqflow.core.runs import FLOW_RUN_TAG, ROLE_TAG, close_runs_of_dead_executions
from seqflow.core.task_status import render_task_counts, render_task_statuses
from seqflow.core.tracking import Tracker
from seqflow.core.training_runs import FINGERPRINT_TAG, RESUMED_FROM_EPOCH_TAG  # noqa: F401 - re-exported


def start_execution(
    pipeline: Pipeline,
    tracker: Tracker,
    run_name_prefix: str,
    profile: str,
    flow_run_id: str | None,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    contract_reports: Iterable[Any] = (),
    dataset_inputs: Sequence[Any] = (),
) -> str:
    """Create the parent run of one execution with its data ``tags``, ``params``, ``metrics``, the contract
    reports (each with ``report_dir`` and ``contract``) and its splits as ``dataset_inputs``; returns its run id.

    First, the runs a killed earlier execution on this host left RUNNING are closed as KILLED and the versions
    it registered are withdrawn (see :func:`seqflow.core.runs.close_runs_of_dead_executions`).
    """
    close_runs_of_dead_executions(tracker)
    run_id = tracker.start_run(
        run_name=f"{run_name_prefix}{profile}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={ROLE_TAG: pipeline.execution_role, FLOW_RUN_TAG: flow_run_id, "profile": profile, **tags},
    )
    reports = list(contract_reports)
    with tracker.closing_on_failure(run_id):
        if dataset_inputs:  # the splits, as MLflow datasets (see seqflow.core.lineage.split_inputs)
            tracker.client.log_inputs(run_id, datasets=list(dataset_inputs))
        tracker.log_params(run_id, params)
        tracker.log_metrics(run_id, metrics)
        for report in reports:
            tracker.log_artifact(run_id, report.report_dir, f"contracts/{report.contract}")
        if reports:
            from seqflow.core.contracts import contracts_description

            # The run's description in the MLflow UI (its note): the pass counts, and where each summary is.
            tracker.set_tags(run_id, {"mlflow.note.content": contracts_description(reports)})
    return run_id


def task_status_tags(statuses: Sequence[Any]) -> dict[str, str]:
    """Parent-run tags naming the tasks that were cached and the earlier MLflow runs this execution reuses."""
    cached = [status for status in statuses if status.status == "cached"]
    return {
        "seqflow.cached_tasks": ",".join(status.task for status in cached) or "none",
        "seqflow.reused_runs": ",".join(f"{status.task}={status.run_id}" for status in cached if status.run_id) or "none",
    }


def log_execution_records(
    tracker: Tracker, parent_run_id: str, task_statuses: Sequence[Any], texts: dict[str, str] | None
) -> None:
    """What each task did (``tasks.json`` and the cached/reused tags) and ``texts`` (artifact file -> text, e.g.
    the execution's state for reruns), on the parent run of an execution."""
    if task_statuses:
        tracker.log_text(parent_run_id, json.dumps([asdict(status) for status in task_statuses], indent=2), "tasks.json")
        tracker.set_tags(parent_run_id, task_status_tags(task_statuses))
    for artifact_file, text in (texts or {}).items():
        tracker.log_text(parent_run_id, text, artifact_file)


def rows_as_csv(rows: Sequence[Any], flat_row: Callable[[Any], dict[str, object]] = asdict) -> str:
    """The comparison rows as CSV, one column per key of ``flat_row(row)``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat_row(rows[0]).keys()) if rows else ["architecture"])
    writer.writeheader()
    for row in rows:
        writer.writerow(flat_row(row))
    return buffer.getvalue()


def summary_fields(
    tracker: Tracker, parent_run_id: str, registration: Any, task_statuses: Sequence[Any] | None
) -> dict[str, Any]:
    """The fields every pipeline's run summary has besides its rows: the parent run, the experiment and
    registered model, the promotion decision and champion (from ``registration``) and what each task did."""
    return {
        "parent_run_id": parent_run_id,
        "experiment_name": tracker.settings.experiment_name,
        "registered_model_name": tracker.settings.registered_model_name,
        "decision_reason": registration.decision_reason,
        "champion_version": registration.champion_version,
        "tasks": list(task_statuses or []),
    }


def render_comparison(summary: Any, header: str, row_lines: list[str], compact: bool = False, notes: Sequence[str] = ()) -> str:
    """A pipeline's comparison table as text: its ``header`` underlined, a line a row, then ``notes`` (what the
    columns mean) and the :func:`summary_footer`."""
    return "\n".join([header, "-" * len(header), *row_lines, "", *notes, *summary_footer(summary, compact)])


def summary_footer(summary: Any, compact: bool = False) -> list[str]:
    """The lines under every pipeline's comparison table (a summary with :func:`summary_fields`): the promotion
    decision, the champion, where the runs are, and what each task did (``compact``: counted, for the terminal)."""
    return [
        f"promotion: {summary.decision_reason}",
        f"champion:  {summary.registered_model_name}@champion = v{summary.champion_version}"
        if summary.champion_version
        else "champion:  none",
        f"MLflow:    experiment {summary.experiment_name!r}, parent run {summary.parent_run_id}",
        *(render_task_counts(summary.tasks) if compact else render_task_statuses(summary.tasks)),
    ]


def finish_execution(
    pipeline: Pipeline,
    tracker: Tracker,
    parent_run_id: str,
    summary: Any,
    metrics: dict[str, float],
    texts: dict[str, str] | None = None,
    log_more: Callable[[], None] | None = None,
    publish: Callable[[Any], None] | None = None,
) -> None:
    """Log the ``summary`` (``render()``, ``rows``, ``tasks``) as ``comparison.txt`` and ``comparison.csv``, what
    each task did, ``texts`` (artifact file -> text), the pipeline's ``log_more`` (figures) and ``metrics`` to
    the parent run, ``publish`` the summary elsewhere (the Prefect table artifact), and only then close the run
    FINISHED.

    A failure anywhere here, the publication included, ends the execution FAILED: its versions are withdrawn
    and the alias goes back (see :meth:`RunLifecycle.closing_on_failure`), like a failure in any earlier step;
    the models are complete, but no version stays registered by an execution that did not finish.
    """
    with tracker.closing_on_failure(parent_run_id, finish=True, withdraw_versions=True):
        tracker.log_text(parent_run_id, summary.render(), "comparison.txt")
        log_execution_records(tracker, parent_run_id, summary.tasks, texts)
        tracker.log_text(parent_run_id, rows_as_csv(summary.rows, pipeline.records.flat_row), "comparison.csv")
        if log_more is not None:
            log_more()
        tracker.log_metrics(parent_run_id, metrics)
        if publish is not None:
            publish(summary)
        # The links to this execution in MLflow and Prefect, in the run's description and a Prefect artifact.
        publish_links(tracker.client, tracker.settings.tracking_uri, parent_run_id, summary.render())
