"""``seqflow rerun TASK`` and ``seqflow charlm rerun TASK``: one task of an earlier execution again, forced past
the cache, on its upstream outputs. One flow for every pipeline, driven by the pipeline's rerun table
(:mod:`seqflow.sentiment.rerun`, :mod:`seqflow.charlm.rerun`): a table entry is named like its task function,
so the task is found by that name in the pipeline's task module."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from prefect import flow

from seqflow.charlm.rerun import CHARLM_RERUNS
from seqflow.core.caching import cached
from seqflow.core.rerun import RerunPlan, RerunSummary, output_identity, swap_models
from seqflow.core.rerun_table import RerunInputs, RerunStep, RerunTable
from seqflow.core.settings import TrackingSettings
from seqflow.sentiment.rerun import SENTIMENT_RERUNS
from seqflow.tasks import charlm as charlm_tasks
from seqflow.tasks import sentiment as sentiment_tasks
from seqflow.tasks.tracking import (
    close_runs_of_failed_flow,
    close_trained_run,
    finish_rerun_tracking,
    open_evaluation_run,
    start_rerun_tracking,
)

# Each pipeline's rerun table and the module holding the tasks its entries name.
PIPELINES: tuple[tuple[RerunTable, ModuleType], ...] = ((SENTIMENT_RERUNS, sentiment_tasks), (CHARLM_RERUNS, charlm_tasks))


def _pipeline_of(plan: RerunPlan) -> tuple[RerunTable, ModuleType]:
    return next((table, tasks) for table, tasks in PIPELINES if table.kind == plan.kind)


def _replaced(state: Any, field: str, outputs: list[Any]) -> Any:
    """``state`` with ``outputs`` in ``field``: in place of the value, or of the list items of the same identity."""
    if isinstance(getattr(state, field), list):
        return dataclasses.replace(state, **{field: swap_models(getattr(state, field), {output_identity(o): o for o in outputs})})
    return dataclasses.replace(state, **{field: outputs[0]})


def _rerun_step(
    name: str, step: RerunStep, tasks: ModuleType, plan: RerunPlan, state: Any, settings: TrackingSettings, parent_run_id: str
) -> tuple[Any, list[str]]:
    """Run one table entry past the cache (once, or once per chosen architecture); returns the state with its
    outputs swapped in, and what it produced."""
    task = cached(getattr(tasks, name), plan.config.artifacts_dir, refresh=True)
    outputs, lines = [], []
    for architecture in plan.architectures if step.per_architecture else [None]:
        trained = None
        if step.opens_child_run:
            trained = open_evaluation_run(settings, state.trained_model(architecture), parent_run_id, plan.rerun_of, plan.kind)
        output = task(**step.arguments(RerunInputs(state, plan.config, settings, parent_run_id, architecture, trained)))
        if step.closes_child_run:
            close_trained_run(settings, output, plan.rerun_of)
        outputs.append(output)
        lines += [f"{architecture}: {line}" if architecture else line for line in step.describe(output, state)]
    return _replaced(state, step.produces, outputs), lines


@flow(name="seqflow-rerun", on_failure=[close_runs_of_failed_flow], on_crashed=[close_runs_of_failed_flow])
def rerun_flow(plan: RerunPlan, settings: TrackingSettings) -> RerunSummary:
    """Rerun exactly ``plan.task`` on the outputs of the execution ``plan.rerun_of``; nothing downstream."""
    table, tasks = _pipeline_of(plan)
    parent_run_id = start_rerun_tracking(settings, plan.task, plan.rerun_of, plan.config, plan.earlier, plan.kind)
    state, outputs = plan.earlier, []
    for name in plan.steps or table.resolve(plan.task):
        state, lines = _rerun_step(name, table.steps[name], tasks, plan, state, settings, parent_run_id)
        outputs += lines
    state = dataclasses.replace(state, config=plan.config)
    return finish_rerun_tracking(settings, plan.task, plan.rerun_of, parent_run_id, state, outputs)
