"""``seqflow charlm rerun TASK``: what to rerun of an earlier ``seqflow charlm run`` execution, checked before
anything runs. The runs it opens and closes are those of :mod:`seqflow.core.rerun` (tagged ``rerun_of``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from seqflow.core.caching import char_encoded_problem, char_split_files_problem
from seqflow.config import ALL_CHAR_ARCHITECTURES, CHARLM_RERUN_TASKS, with_charlm_overrides
from seqflow.core.errors import ConfigError, SeqflowError
from seqflow.core.state import CharLMState
from seqflow.core.rerun import CHARLM, RerunPlan, load_earlier_execution
from seqflow.core.tracking import Tracker

# Tasks that take --arch: one model each.
PER_ARCHITECTURE_TASKS = ("train", "evaluate")
# Upstream outputs each rerunnable task reads, checked before anything runs. Register reads the ids too: a
# champion measured on other text is re-scored on this validation text.
_NEEDS_SPLITS = ("validate", "encode", "train")
_NEEDS_IDS = ("train", "evaluate", "register")


def _upstream_problems(tracker: Tracker, task: str, earlier: CharLMState, architectures: list[str]) -> list[str | None]:
    problems: list[str | None] = []
    if task in _NEEDS_SPLITS:
        problems.append(char_split_files_problem(earlier.split_files))
    if task in _NEEDS_IDS:
        problems.append(char_encoded_problem(earlier.encoded))
    if task == "evaluate":
        for architecture in architectures:
            step_model_path = earlier.trained_model(architecture).step_model_path
            if not Path(step_model_path).is_file():
                problems.append(f"model file {step_model_path} is gone")
    if task == "register":
        problems += [f"MLflow run {model.run_id} is gone" for model in earlier.evaluated if tracker.run_state(model.run_id) is None]
    return problems


def plan_charlm_rerun(
    tracker: Tracker,
    task: str,
    from_run: str | None,
    architectures: list[str] | None,
    overrides: Mapping[str, Any],
) -> RerunPlan:
    """Resolve the earlier execution (default: the latest FINISHED ``seqflow charlm run`` of the charlm
    experiment), its settings plus ``overrides`` and the architectures; check that the upstream outputs the task
    needs are still on disk with the same digests, and its MLflow runs still there."""
    if task not in CHARLM_RERUN_TASKS:
        raise ConfigError(f"cannot rerun {task!r}; tasks: {', '.join(CHARLM_RERUN_TASKS)}")
    if architectures and task not in PER_ARCHITECTURE_TASKS:
        raise ConfigError(f"--arch applies to {' and '.join(PER_ARCHITECTURE_TASKS)}, not {task}")
    rerun_of, earlier = load_earlier_execution(tracker, from_run, CHARLM)
    config = with_charlm_overrides(earlier.config, overrides)
    chosen = list(dict.fromkeys(architectures or [model.architecture for model in earlier.trained]))
    unknown = [arch for arch in chosen if arch not in ALL_CHAR_ARCHITECTURES]
    if unknown:
        raise ConfigError(f"unknown architectures {unknown}; known: {list(ALL_CHAR_ARCHITECTURES)}")
    problem = next((p for p in _upstream_problems(tracker, task, earlier, chosen) if p), None)
    if problem:
        raise SeqflowError(
            f"cannot rerun {task} from parent run {rerun_of}: {problem}; run `seqflow charlm run` again to rebuild it"
        )
    return RerunPlan(task, rerun_of, earlier, config, chosen, CHARLM)
