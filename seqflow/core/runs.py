"""The life of MLflow runs: start, end, closing on failure, and recovering from owners that died.

Every run is tagged with the process that owns it (:mod:`seqflow.core.processes`). A process killed outright
(``kill -9``, out of memory, power cut) leaves its runs RUNNING and maybe versions registered by an execution
that never finished: :func:`close_runs_of_dead_executions` ends those runs as KILLED and withdraws those
versions. Every execution runs it first, and so do the commands that read the champion (``champion``,
``predict``, ``serve``, ``generate``, ``promote``, ``rollback``) so that they never use such a version.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

from seqflow.core.model_registry import SEARCH_MAX_RESULTS, ModelRegistry
from seqflow.core.processes import ProcessIdentity, current_process, is_gone

logger = logging.getLogger(__name__)

# Tag that links every MLflow run to the Prefect flow run that created it (used to close runs of a failed flow).
FLOW_RUN_TAG = "seqflow.prefect_flow_run_id"
ROLE_TAG = "seqflow.role"
# Roles of the parent run of one execution: `seqflow run` and `seqflow charlm run` (and their reruns).
EXECUTION_ROLES = ("pipeline", "charlm-pipeline")
# Why a run of a dead process was closed by a later `seqflow run` (see close_runs_of_dead_processes).
CLOSED_REASON_TAG = "seqflow.closed_reason"


def ended_status(exc: BaseException) -> str:
    """MLflow status for a run cut short by ``exc``: KILLED for an interrupt or termination signal (anything
    that is not an ``Exception``: KeyboardInterrupt, SystemExit, Prefect's TerminationSignal), else FAILED."""
    return "FAILED" if isinstance(exc, Exception) else "KILLED"


# Runs this process opened and has not ended yet, {run_id: tracking URI}: what a signal handler must close.
_open_runs: dict[str, str] = {}
_open_runs_lock = threading.Lock()


def open_runs() -> dict[str, str]:
    """The runs this process opened and has not ended, as ``{run_id: tracking_uri}``."""
    with _open_runs_lock:
        return dict(_open_runs)


def end_open_runs(status: str = "KILLED") -> list[str]:
    """End every run this process opened and has not ended (used when it is interrupted); returns their ids.

    Never raises: it runs while the process is going down, and one unreachable store must not keep the other
    runs open.
    """
    ended: list[str] = []
    for run_id, tracking_uri in open_runs().items():
        from mlflow import MlflowClient

        try:
            MlflowClient(tracking_uri=tracking_uri).set_terminated(run_id, status=status)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next run
            logger.warning("could not end MLflow run %s as %s: %s", run_id, status, exc)
            continue
        _forget_run(run_id)
        ended.append(run_id)
    return ended


def _remember_run(run_id: str, tracking_uri: str) -> None:
    with _open_runs_lock:
        _open_runs[run_id] = tracking_uri


def _forget_run(run_id: str) -> None:
    with _open_runs_lock:
        _open_runs.pop(run_id, None)


@dataclass(frozen=True)
class ClosedRun:
    """A RUNNING run whose owner process was gone, ended as KILLED."""

    run_id: str
    run_name: str
    role: str | None
    owner: ProcessIdentity


def git_commit() -> str | None:
    """The checked-out commit of the working directory, if it is a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class RunLifecycle(ModelRegistry):
    """Runs of one experiment from start to end. Built on the registry: a failed or dead execution's versions
    are withdrawn before its parent run is closed."""

    def start_run(self, run_name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
        from seqflow.core.lineage import source_tags

        # The command and the user, as MLflow's own start_run records them (the Source and Created-by columns).
        all_tags = {**source_tags(), **{key: str(value) for key, value in tags.items() if value is not None}}
        commit = git_commit()
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        # The owner process, so that a later run can tell that this one died without closing it.
        all_tags.update(current_process().as_tags())
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        _remember_run(run.info.run_id, self.settings.connection_uri())
        return run.info.run_id

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)
        _forget_run(run_id)

    @contextlib.contextmanager
    def closing_on_failure(self, run_id: str, *, finish: bool = False, withdraw_versions: bool = False) -> Iterator[None]:
        """Run the block for ``run_id``; if it raises, end the run FAILED (KILLED for an interrupt, see
        :func:`ended_status`) and re-raise. ``finish``: end it FINISHED when the block succeeds.

        ``withdraw_versions`` (for an execution's parent run): first delete the versions registered with this
        run as their ``parent_run_id`` and give ``champion`` back to the version it replaced, so a failed
        execution leaves no version or alias behind. Withdrawn before the run is ended: a process killed in
        between leaves the run RUNNING, and the next execution withdraws the versions of its dead parent.

        A failure of this cleanup is logged, never raised in place of the error that caused it (often the same
        unreachable store); a run it could not end stays on the process's list for the CLI's last resort.
        """
        try:
            yield
            if finish:
                self.end_run(run_id, "FINISHED")
        except BaseException as exc:
            status = ended_status(exc)
            if withdraw_versions:
                try:
                    withdrawn = self.withdraw_versions_of_executions([run_id])
                except Exception as cleanup_exc:  # noqa: BLE001 - see the docstring
                    logger.error("could not withdraw the versions of failed execution %s: %s", run_id, cleanup_exc)
                else:
                    if withdrawn:
                        logger.warning(
                            "deleted version(s) %s of %r: the execution that registered them ended %s",
                            ", ".join(withdrawn), self.settings.registered_model_name, status,
                        )
            try:
                self.end_run(run_id, status)
            except Exception as cleanup_exc:  # noqa: BLE001 - see the docstring
                logger.error("could not end MLflow run %s as %s: %s", run_id, status, cleanup_exc)
            raise

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def run_state(self, run_id: str) -> tuple[str, str] | None:
        """``(status, lifecycle stage)`` of a run, or None when the store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            info = self.client.get_run(run_id).info
        except MlflowException:
            return None
        return info.status, info.lifecycle_stage

    def latest_pipeline_run(self, status: str = "FINISHED", role: str = "pipeline") -> str | None:
        """The most recently started parent run (one per execution) with ``status``, or None; ``role``:
        ``pipeline`` (seqflow run) or ``charlm-pipeline`` (seqflow charlm run)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = '{role}' and attributes.status = '{status}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def close_open_runs(self, flow_run_id: str, status: str = "FAILED") -> list[str]:
        """End every RUNNING run created by the Prefect flow run ``flow_run_id``; returns their ids.

        Versions registered under one of them (as ``parent_run_id``) are withdrawn first: the flow failed
        between registering and finishing its parent run, so no finished execution stands behind them.
        """
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
        )
        withdrawn = self.withdraw_versions_of_executions(run.info.run_id for run in runs)
        if withdrawn:
            logger.warning(
                "deleted version(s) %s of %r: registered by a flow run that failed before it finished",
                ", ".join(withdrawn), self.settings.registered_model_name,
            )
        for run in runs:
            self.end_run(run.info.run_id, status)
        return [run.info.run_id for run in runs]

    def close_runs_of_dead_processes(self) -> list[ClosedRun]:
        """End as KILLED every RUNNING run of this experiment whose owner process on this host is gone.

        A ``kill -9``, an out-of-memory kill or a power cut leaves runs RUNNING forever; the next ``seqflow run``
        calls this first. Runs of live processes (another ``seqflow run`` at work) and of other hosts (which
        cannot be checked from here) are left alone, as are runs without owner tags.
        """
        from seqflow.core.processes import HOST_TAG, current_host

        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{current_host()}'",
            max_results=SEARCH_MAX_RESULTS,
        )
        closed = []
        for run in runs:
            owner = ProcessIdentity.from_tags(run.data.tags)
            if owner is None or not is_gone(owner):
                continue
            self.client.set_tag(run.info.run_id, CLOSED_REASON_TAG, f"owner process {owner.describe()} is gone")
            self.client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(ClosedRun(run.info.run_id, run.info.run_name, run.data.tags.get(ROLE_TAG), owner))
        return closed


def close_runs_of_dead_executions(runs: RunLifecycle, execution_roles: Iterable[str] = EXECUTION_ROLES) -> list[str]:
    """End the RUNNING runs of processes on this host that are gone (``kill -9``, out of memory, power cut) as
    KILLED, and withdraw the registered versions of executions whose parent run (a role in ``execution_roles``)
    was among them; returns the withdrawn versions."""
    closed = runs.close_runs_of_dead_processes()
    for run in closed:
        logger.warning(
            "closed MLflow run %s (%s) as KILLED: its process %s is gone", run.run_id, run.run_name, run.owner.describe()
        )
    roles = tuple(execution_roles)
    withdrawn = runs.withdraw_versions_of_executions([run.run_id for run in closed if run.role in roles])
    if withdrawn:
        logger.warning(
            "deleted version(s) %s of %r: registered by an execution that never finished",
            ", ".join(withdrawn),
            runs.settings.registered_model_name,
        )
    return withdrawn


def recover_before_reading(runs: RunLifecycle) -> None:
    """For the commands that read the champion: the same clean-up an execution does first, so that a version
    of an execution killed while registering is never inspected, served or scored. A store this process may
    not write to (read-only) is not cleaned, with a warning saying what may be left."""
    try:
        close_runs_of_dead_executions(runs)
    except Exception as exc:  # noqa: BLE001 - reading goes on; the warning says what may be wrong
        logger.warning(
            "could not check %r for versions of executions that were killed (%s: %s); if one was killed while "
            "registering, the champion may be its version until the next run cleans up",
            runs.settings.registered_model_name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
        )
