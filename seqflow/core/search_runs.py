"""The MLflow side of one search session, for any pipeline: its parent run (the trials are nested under it),
and at the end the study's plots, every trial as JSON lines, the best trial and its profile file, logged there.

A resumed search opens a new parent run tagged with the same study; its plots and table cover the whole study.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from seqflow.core.runs import FLOW_RUN_TAG, ROLE_TAG, close_runs_of_dead_executions
from seqflow.core.studies import best_trial, counted_trials, plot_study, trials_table
from seqflow.core.tracking import Tracker
from seqflow.core.tuning import OBJECTIVE, SEARCH_ROLE, STUDY_TAG, TrialResult


@dataclass(frozen=True)
class TuneRequest:
    """What ``seqflow tune`` was asked: which model, the study and where it is stored, the space, the budget."""

    architecture: str
    study_name: str
    storage_url: str
    # The space as plain data ({"section.field": {"type": ..., ...}}).
    space: dict[str, Any]
    trials: int
    timeout_minutes: float | None
    pruner: str
    # Trials in flight at once: 1 sequentially, the Dask workers otherwise.
    parallel: int
    # Where the best trial's profile file is written, and what it starts from: a named profile and the settings
    # the command added to it (--profile FILE, --set, --source, --seed).
    profile_path: str
    base_profile: str = "quick"
    base_settings: dict[str, Any] = field(default_factory=dict)
    # Which pipeline's model is searched: "sentiment" (`seqflow tune`) or "charlm" (`seqflow charlm tune`).
    pipeline: str = "sentiment"


def start_search_run(tracker: Tracker, request: TuneRequest, profile: str, flow_run_id: str | None,
                     tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """The parent run of this search session, after closing what a killed earlier one left RUNNING."""
    close_runs_of_dead_executions(tracker)
    run_id = tracker.start_run(
        run_name=f"tune-{request.architecture}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={ROLE_TAG: SEARCH_ROLE, STUDY_TAG: request.study_name, FLOW_RUN_TAG: flow_run_id, "profile": profile,
              "architecture": request.architecture, **tags},
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, {**params, "search.trials": request.trials, "search.pruner": request.pruner,
                                    "search.parallel": request.parallel, "search.timeout_minutes": request.timeout_minutes})
        tracker.log_text(run_id, json.dumps(request.space, indent=2), "search/space.json")
    return run_id


@dataclass(frozen=True)
class SearchSummary:
    """What a search session prints: this session's trials, the study's best and where its profile went."""

    study_name: str
    parent_run_id: str
    session: list[TrialResult]
    failures: list[str]
    stopped_by: str
    trials_in_study: int
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    profile_path: str | None
    # The command that trains the profile file: `seqflow run` or `seqflow charlm run`.
    run_command: str = "seqflow run"

    def render(self) -> str:
        lines = [f"study {self.study_name}: {self.trials_in_study} trial(s) completed or pruned "
                 f"(this session: {len(self.session)}, stopped by {self.stopped_by}); MLflow parent run {self.parent_run_id}"]
        for result in sorted(self.session, key=lambda r: r.number):
            value = f"{OBJECTIVE} {result.value:.4f}" if result.value is not None else result.note
            lines.append(f"  trial {result.number:3d}  {result.state:8}  epochs {result.epochs:2d}  {value}  run {result.run_id}")
        lines.extend(f"  {failure}" for failure in self.failures)
        if self.best_number is None:
            lines.append("no trial has completed yet: run the same command again to go on")
            return "\n".join(lines)
        lines.append(f"best: trial {self.best_number}, {OBJECTIVE} {self.best_value:.4f}")
        lines.extend(f"  {key} = {value}" for key, value in self.best_params.items())
        lines.append(f"profile written to {self.profile_path}: train it with `{self.run_command} --profile {self.profile_path}`")
        return "\n".join(lines)


def finish_search_run(tracker: Tracker, run_id: str, study: Any, progress: Any, profile_path: Path | None,
                      plots_dir: Path, run_command: str = "seqflow run") -> SearchSummary:
    """Log the study's plots, trials and best trial to the parent run and end it FINISHED."""
    best = best_trial(study)
    with tracker.closing_on_failure(run_id, finish=True):
        for plot in plot_study(study, plots_dir):
            tracker.log_artifact(run_id, plot, "plots")
        tracker.log_text(run_id, trials_table(study), "search/trials.jsonl")
        tracker.log_metrics(run_id, {"trials_in_study": counted_trials(study), "session_trials": len(progress.results),
                                     "session_failures": len(progress.failures)})
        if best is not None:
            tracker.log_metrics(run_id, {f"best_{OBJECTIVE}": best.value, "best_trial": best.number})
            tracker.set_tags(run_id, {"seqflow.best_trial": str(best.number)})
            if profile_path is not None:
                tracker.log_artifact(run_id, profile_path, "search")
    return SearchSummary(
        study_name=study.study_name, parent_run_id=run_id, session=list(progress.results),
        failures=list(progress.failures), stopped_by=progress.stopped_by, trials_in_study=counted_trials(study),
        best_number=None if best is None else best.number, best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        profile_path=None if best is None or profile_path is None else str(profile_path), run_command=run_command,
    )
