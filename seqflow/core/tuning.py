"""The search loop of ``seqflow tune`` and the life of one trial, for any pipeline.

The flow asks the study for trials (all parameters sampled at once from the space's distributions) and submits
each as a Prefect task to the flow's task runner: one after another in this process, or several at a time on
Dask workers. A trial trains through its pipeline's own training step (the same Keras fit and callbacks as
``seqflow run``) in a nested MLflow run under the search's parent run; after every epoch its validation loss is
logged and reported to the study, whose pruner may stop it. The trial tells the study its result itself, as
soon as it ends, so a search killed outright loses only the trials in flight (failed on the next resume).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from seqflow.core.fitting import EpochCallback
from seqflow.core.runs import FLOW_RUN_TAG, ROLE_TAG
from seqflow.core.studies import RUN_ATTR, TrialResult, make_pruner
from seqflow.core.tracking import Tracker

logger = logging.getLogger(__name__)

# The metric every trial is scored by, per epoch and overall (its lowest epoch): both pipelines log it.
OBJECTIVE = "val_loss"
SEARCH_ROLE = "search"
TRIAL_ROLE = "trial"
# Tag on a trial's run: how its trial ended in the study (COMPLETE, PRUNED or FAIL).
TRIAL_STATE_TAG = "seqflow.trial_state"
STUDY_TAG = "seqflow.study"
# Seconds between looks at the trials in flight.
POLL_S = 0.5


@dataclass(frozen=True)
class TrialTicket:
    """What a trial task needs to find its study and trial: sent to whichever worker runs it."""

    storage_url: str
    study_name: str
    trial_id: int
    number: int
    params: dict[str, Any]
    pruner: str
    startup_trials: int


def discard_trial_output(output_dir: Path) -> None:
    """A trial's saved model is not kept: ``--register`` retrains the best configuration through the pipeline."""
    shutil.rmtree(output_dir, ignore_errors=True)


class PrunedAtEpoch(Exception):
    """Raised from inside the fit (through the epoch callback) when the study's pruner stops a trial."""

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned after epoch {epoch} (val_loss {value:.4f})")
        self.epoch = epoch


def reporting_callback(trial: Any, log_epoch: EpochCallback) -> EpochCallback:
    """An epoch callback that logs the epoch to MLflow, reports its validation loss to the study and stops the
    fit (raising :class:`PrunedAtEpoch`) when the pruner says so."""

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        log_epoch(epoch, logs)
        value = logs.get(OBJECTIVE)
        if value is None or not math.isfinite(value):
            return
        trial.report(float(value), epoch)
        if trial.should_prune():
            raise PrunedAtEpoch(epoch, float(value))

    return on_epoch_end


def run_trial(
    tracker: Tracker,
    ticket: TrialTicket,
    parent_run_id: str,
    flow_run_id: str | None,
    tags: Mapping[str, str],
    train: Callable[[str, EpochCallback], dict[str, list[float]]],
) -> TrialResult:
    """Run one trial in its own nested MLflow run: ``train(run_id, on_epoch_end)`` fits the model and returns
    its per-epoch history. The trial's result (its lowest validation loss, pruned, or failed) is told to the
    study and tagged on the run before the run ends; a failure is raised after that."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=ticket.study_name, storage=ticket.storage_url,
                              pruner=make_pruner(ticket.pruner, ticket.startup_trials))
    trial = optuna.trial.Trial(study, ticket.trial_id)
    run_id = tracker.start_run(
        run_name=f"trial-{ticket.number:03d}",
        tags={ROLE_TAG: TRIAL_ROLE, STUDY_TAG: ticket.study_name, "trial_number": str(ticket.number),
              FLOW_RUN_TAG: flow_run_id, **tags},
        parent_run_id=parent_run_id,
    )
    history: dict[str, list[float]] = {}
    # Everything after start_run is inside the try: whatever fails (the study's database, a parameter MLflow
    # refuses) ends the run FAILED and the trial FAIL, never a run left RUNNING.
    try:
        study._storage.set_trial_user_attr(ticket.trial_id, RUN_ATTR, run_id)
        tracker.log_params(run_id, {f"search.{key}": value for key, value in ticket.params.items()})
        history = train(run_id, reporting_callback(trial, tracker.epoch_logger(run_id)))
        losses = [v for v in history.get(OBJECTIVE, []) if math.isfinite(v)]
        if not losses:
            raise ValueError(f"the fit logged no finite {OBJECTIVE}")
        value = min(losses)
        tracker.log_metrics(run_id, {f"best_{OBJECTIVE}": value})
        tracker.set_tags(run_id, {TRIAL_STATE_TAG: TrialState.COMPLETE.name})
        study.tell(trial, value)
        tracker.end_run(run_id, "FINISHED")
        return TrialResult(ticket.number, "COMPLETE", value, run_id, len(history.get(OBJECTIVE, [])))
    except PrunedAtEpoch as pruned:
        tracker.set_tags(run_id, {TRIAL_STATE_TAG: TrialState.PRUNED.name, "seqflow.pruned_after_epoch": str(pruned.epoch)})
        tracker.log_metrics(run_id, {"pruned_after_epoch": pruned.epoch})
        study.tell(trial, state=TrialState.PRUNED)
        tracker.end_run(run_id, "FINISHED")
        return TrialResult(ticket.number, "PRUNED", None, run_id, pruned.epoch, str(pruned))
    except BaseException as error:
        from seqflow.core.runs import ended_status

        try:
            tracker.set_tags(run_id, {TRIAL_STATE_TAG: TrialState.FAIL.name})
            study._storage.set_trial_user_attr(ticket.trial_id, "seqflow.failed_reason", str(error).splitlines()[0][:500] if str(error) else type(error).__name__)
            study.tell(trial, state=TrialState.FAIL)
        finally:
            tracker.end_run(run_id, ended_status(error))
        raise


@dataclass
class SearchProgress:
    """What one search session did: its trials' results, failures and why it stopped."""

    results: list[TrialResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopped_by: str = "trials"


def search(
    study: Any,
    space_distributions: Mapping[str, Any],
    submit: Callable[[Any], Any],
    trials: int,
    parallel: int,
    timeout_s: float | None,
    owner: Mapping[str, Any],
) -> SearchProgress:
    """Ask, submit and collect trials until the study holds ``trials`` completed or pruned ones, ``timeout_s``
    has passed (trials in flight still finish), or this session has started ``trials`` (failures included).

    ``submit(optuna_trial)`` submits the trial's task and returns its Prefect future; up to ``parallel`` are in
    flight at a time (a sequential task runner runs each at submission)."""
    from seqflow.core.studies import OWNER_ATTR, counted_trials

    progress = SearchProgress()
    started_at, started = time.monotonic(), 0
    in_flight: list[tuple[int, Any]] = []
    while True:
        timed_out = timeout_s is not None and time.monotonic() - started_at > timeout_s
        wanted = trials - counted_trials(study) - len(in_flight)
        while not timed_out and wanted > 0 and started < trials and len(in_flight) < parallel:
            trial = study.ask(dict(space_distributions))
            trial.set_user_attr(OWNER_ATTR, dict(owner))
            logger.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in trial.params.items()))
            in_flight.append((trial.number, submit(trial)))
            started, wanted = started + 1, wanted - 1
        if not in_flight:
            progress.stopped_by = "timeout" if timed_out else ("attempts" if counted_trials(study) < trials else "trials")
            return progress
        for entry in [entry for entry in in_flight if entry[1].state.is_final()]:
            in_flight.remove(entry)
            number, future = entry
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a failed trial is told FAIL; the search goes on
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                logger.warning("trial %d failed: %s", number, reason)
                progress.failures.append(f"trial {number}: {reason}")
                continue
            logger.info("trial %d %s%s", number, result.state,
                        f": best {OBJECTIVE} {result.value:.4f}" if result.value is not None else f" ({result.note})")
            progress.results.append(result)
        if in_flight:
            time.sleep(POLL_S)
