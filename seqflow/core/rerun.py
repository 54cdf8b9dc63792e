"""``seqflow rerun TASK`` and ``seqflow charlm rerun TASK``: run one task of an earlier execution again, past
the cache, on that execution's upstream outputs.

The earlier execution is a parent MLflow run with ``pipeline_state.json`` (what every task produced). A rerun
opens a new parent run tagged ``rerun_of=<earlier parent run id>``; a rerun train or evaluate writes to a new
child run under it, tagged the same. Downstream tasks are not rerun; the new parent run's state is the earlier
one with the rerun task's output swapped in, so a later rerun can start from it. What differs between the
pipelines (run roles, commands) is in :class:`ExecutionKind`; how the state is read and what each task reads and
produces are in the pipeline's rerun table (:class:`~seqflow.core.rerun_table.RerunTable`), from which
:func:`plan_from_table` plans any pipeline's rerun and :mod:`seqflow.flows.rerun` runs it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from seqflow.core.errors import ConfigError, SeqflowError
from seqflow.core.rerun_table import CHARLM, SENTIMENT, ExecutionKind, RerunTable
from seqflow.core.rerun_table import registration_lines  # noqa: F401 - re-exported for earlier imports
from seqflow.core.state import STATE_ARTIFACT, state_to_json
from seqflow.core.task_status import TaskStatus, render_task_statuses
from seqflow.core.tracking import FLOW_RUN_TAG, ROLE_TAG, Tracker

RERUN_OF_TAG = "rerun_of"
RERUN_TASK_TAG = "seqflow.rerun_task"


_KINDS = (SENTIMENT, CHARLM)


@dataclass(frozen=True)
class RerunSummary:
    task: str
    rerun_of: str
    parent_run_id: str
    experiment_name: str
    outputs: list[str]
    tasks: list[TaskStatus] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"reran:     {self.task} (forced past the cache) on the outputs of parent run {self.rerun_of}",
            *(f"output:    {line}" for line in self.outputs),
            f"MLflow:    experiment {self.experiment_name!r}, new parent run {self.parent_run_id} ({RERUN_OF_TAG}={self.rerun_of})",
        ]
        lines.extend(render_task_statuses(self.tasks))
        return "\n".join(lines)


def load_earlier_execution(
    tracker: Tracker, run_id: str | None, kind: ExecutionKind, read_state: Callable[[str], Any]
) -> tuple[str, Any]:
    """The parent run ``run_id`` (default: the latest FINISHED one of ``kind``) and the state it recorded, read
    by the pipeline's ``read_state``."""
    if run_id is None:
        run_id = tracker.latest_pipeline_run(role=kind.parent_role)
        if run_id is None:
            raise SeqflowError(
                f"no FINISHED `{kind.command}` execution in experiment {tracker.settings.experiment_name!r} of "
                f"{tracker.settings.tracking_uri}; run `{kind.command}` first or pass --from-run"
            )
    state = tracker.run_state(run_id)
    if state is None:
        raise SeqflowError(
            f"no MLflow run {run_id!r} in {tracker.settings.tracking_uri}; pass the id of a `{kind.command}` parent run"
        )
    role = tracker.run_tags(run_id).get(ROLE_TAG, "unknown")
    other = next((other for other in _KINDS if other != kind and other.parent_role == role), None)
    if other is not None:
        raise SeqflowError(
            f"MLflow run {run_id} is a `{other.command}` execution; rerun its tasks with `{other.rerun_command}`"
        )
    text = tracker.read_text(run_id, STATE_ARTIFACT)
    if text is None:
        raise SeqflowError(
            f"MLflow run {run_id} (role {role}) has no {STATE_ARTIFACT}: it is not a finished `{kind.command}` "
            "execution, or one from before reruns were recorded; pass another --from-run"
        )
    return run_id, read_state(text)


@dataclass(frozen=True)
class RerunPlan:
    """What a rerun runs: ``task`` as asked for (a task name or an earlier alias), the task names it resolves to
    (``steps``), on the state of one earlier parent run, with these settings."""

    task: str
    rerun_of: str
    earlier: Any  # the pipeline's state (PipelineState, CharLMState)
    config: Any
    architectures: list[str]
    kind: ExecutionKind = SENTIMENT
    steps: tuple[str, ...] = ()


def plan_from_table(
    tracker: Tracker,
    table: RerunTable,
    task: str,
    from_run: str | None,
    architectures: list[str] | None,
    overrides: Mapping[str, Any],
) -> RerunPlan:
    """Resolve the earlier execution (default: the latest FINISHED one of the table's pipeline), its settings
    plus ``overrides`` and the architectures; check that the upstream outputs the task needs are still on disk
    with the same digests, and its MLflow runs still there, before anything runs."""
    if task not in table.names:
        raise ConfigError(f"cannot rerun {task!r}; tasks: {', '.join(table.names)}")
    steps = table.resolve(task)
    per_architecture = table.per_architecture
    if architectures and not all(step in per_architecture for step in steps):
        raise ConfigError(f"--arch applies to {' and '.join(per_architecture)}, not {task}")
    rerun_of, earlier = load_earlier_execution(tracker, from_run, table.kind, table.read_state)
    config = table.with_overrides(earlier.config, overrides)
    chosen = list(dict.fromkeys(architectures or [model.architecture for model in earlier.trained]))
    unknown = [arch for arch in chosen if arch not in table.architectures]
    if unknown:
        raise ConfigError(f"unknown architectures {unknown}; known: {list(table.architectures)}")
    needs = dict.fromkeys(need for step in steps for need in table.steps[step].needs)
    problems = [problem for need in needs for problem in table.upstream[need](tracker, earlier, chosen)]
    problem = next((p for p in problems if p), None)
    if problem:
        raise SeqflowError(
            f"cannot rerun {task} from parent run {rerun_of}: {problem}; run `{table.kind.command}` again to rebuild it"
        )
    return RerunPlan(task, rerun_of, earlier, config, chosen, table.kind, steps)


def start_rerun_run(
    tracker: Tracker,
    task: str,
    rerun_of: str,
    config: Any,
    state: Any,
    flow_run_id: str | None,
    kind: ExecutionKind = SENTIMENT,
) -> str:
    """The new parent run of a rerun: the execution's params and data tags, tagged with what it reruns."""
    run_id = tracker.start_run(
        run_name=f"rerun-{task}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            ROLE_TAG: kind.parent_role,
            FLOW_RUN_TAG: flow_run_id,
            "profile": config.profile,
            RERUN_OF_TAG: rerun_of,
            RERUN_TASK_TAG: task,
            **state.dataset_tags(),
        },
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, config.to_flat_dict())
    return run_id


def start_evaluation_run(
    tracker: Tracker,
    trained: Any,
    parent_run_id: str,
    rerun_of: str,
    flow_run_id: str | None,
    kind: ExecutionKind = SENTIMENT,
) -> Any:
    """A new child run for evaluating an already trained model (TrainedModel or TrainedCharModel) again;
    ``trained`` pointed at it."""
    run_id = tracker.start_run(
        run_name=f"{trained.architecture}-evaluation",
        tags={
            ROLE_TAG: kind.child_role,
            "architecture": trained.architecture,
            FLOW_RUN_TAG: flow_run_id,
            RERUN_OF_TAG: rerun_of,
            "evaluated_model_run": trained.run_id,
            "model_uri": trained.model_uri,
        },
        parent_run_id=parent_run_id,
    )
    return dataclasses.replace(trained, run_id=run_id)


def output_identity(output: Any) -> str:
    """What one item of a listed output is the output of: its architecture (models) or its contract (reports)."""
    architecture = getattr(output, "architecture", None)
    return architecture if architecture is not None else output.contract


def swap_models(models: list[Any], replacements: dict[str, Any]) -> list[Any]:
    """``models`` (per architecture, or contract reports per contract) with those of ``replacements``' keys
    replaced, the new ones last."""
    return [model for model in models if output_identity(model) not in replacements] + list(replacements.values())


def close_trained_run(tracker: Tracker, trained: Any, rerun_of: str) -> None:
    """A rerun train stops before evaluation: tag its child run and close it FINISHED (no test metrics)."""
    tracker.set_tags(trained.run_id, {RERUN_OF_TAG: rerun_of})
    tracker.end_run(trained.run_id, "FINISHED")


def finish_rerun_run(
    tracker: Tracker,
    task: str,
    rerun_of: str,
    parent_run_id: str,
    state: Any,
    outputs: list[str],
    statuses: list[TaskStatus],
) -> RerunSummary:
    """Log the new state and what ran to the rerun's parent run and close it FINISHED."""
    summary = RerunSummary(task, rerun_of, parent_run_id, tracker.settings.experiment_name, outputs, statuses)
    # A rerun of register registered its versions under this parent: a failure here withdraws them.
    with tracker.closing_on_failure(parent_run_id, finish=True, withdraw_versions=True):
        tracker.log_text(parent_run_id, state_to_json(state), STATE_ARTIFACT)
        tracker.log_text(parent_run_id, json.dumps([dataclasses.asdict(status) for status in statuses], indent=2), "tasks.json")
        tracker.log_text(parent_run_id, summary.render(), "rerun.txt")
    return summary


def refuse_architectures_not_trained(plan: RerunPlan) -> None:
    """``rerun train|evaluate --arch A`` repeats the earlier execution's work: an architecture it never trained
    is refused (it would be trained on the earlier data without having been part of that execution). Called by
    the CLI after planning, before the rerun flow starts."""
    had = [model.architecture for model in plan.earlier.trained]
    new = [arch for arch in plan.architectures if arch not in had]
    if new:
        raise ConfigError(
            f"--arch {', '.join(new)}: the earlier execution (parent run {plan.rerun_of}) trained "
            f"{', '.join(had) or 'no architecture'}; a rerun repeats its tasks for those only; train another "
            "architecture with `seqflow run --arch NAME`"
        )
