"""Where the tasks of ``seqflow run`` execute: the Prefect task runner built from an :class:`ExecutionConfig`.

The flow submits one training and one evaluation per architecture and waits for them; the task runner decides
whether they run one after another in this process (:class:`InlineTaskRunner`, the default) or in parallel on
Dask worker processes (prefect-dask's ``DaskTaskRunner``). Tasks exchange paths, digests and run ids, never live
models, so any worker can run any of them, provided it reaches the same MLflow store and Prefect API.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import time
import uuid
from typing import Any, Callable, Iterable, Iterator

from prefect import flow, tags
from prefect.futures import PrefectConcurrentFuture, PrefectFuture, wait
from prefect.task_runners import TaskRunner

from seqflow.core.config import ExecutionConfig
from seqflow.core.errors import ConfigError

logger = logging.getLogger(__name__)

# How long to try reaching a Dask scheduler given by address before giving up with a clear message.
SCHEDULER_CONNECT_TIMEOUT_S = 10.0
# Where a local Dask cluster listens: this machine only. Dask moves the dashboard to a free port when 8787 is taken.
LOOPBACK_HOST = "127.0.0.1"
DASK_DASHBOARD_PORT = 8787


class InlineTaskRunner(TaskRunner[PrefectConcurrentFuture[Any]]):
    """Run each submitted task at once, in the submitting thread, and return its finished future.

    ``task.submit(...)`` then behaves like calling the task: one task at a time, in this process, on the flow's
    own thread (Ctrl-C stops the task that is running), in the order the flow submits them. A flow written for
    a parallel runner thereby also runs sequentially, unchanged.
    """

    def duplicate(self) -> InlineTaskRunner:
        return type(self)()

    def submit(  # type: ignore[override]  # one implementation for the base class's overloads
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Iterable[PrefectFuture[Any]] | None = None,
        dependencies: dict[str, set[Any]] | None = None,
    ) -> PrefectConcurrentFuture[Any]:
        from prefect.task_engine import run_task_sync

        if not self._started:
            raise RuntimeError("Task runner is not started")
        if task.isasync:
            raise TypeError(f"{type(self).__name__} runs synchronous tasks only; {task.name!r} is async")
        task_run_id = uuid.uuid4()
        state = run_task_sync(
            task=task,
            task_run_id=task_run_id,
            parameters=parameters,
            wait_for=wait_for,
            return_type="state",
            dependencies=dependencies,
        )
        finished: concurrent.futures.Future[Any] = concurrent.futures.Future()
        finished.set_result(state)
        return PrefectConcurrentFuture(task_run_id=task_run_id, wrapped_future=finished)


def pipeline_flow(name: str, close_runs: Callable[..., None]) -> Callable[[Callable[..., Any]], Any]:
    """The decorator of a pipeline's flow ``name``: inline tasks unless :func:`run_flow_on` gives it another
    runner, and ``close_runs`` (closing the runs a failed or crashed flow left open) on failure and on a crash."""
    return flow(name=name, task_runner=InlineTaskRunner(), on_failure=[close_runs], on_crashed=[close_runs])


# One training and its evaluation, as submitted to a flow's task runner.
Submitted = tuple[PrefectFuture[Any], PrefectFuture[Any]]


def evaluated_models(submitted: list[Submitted]) -> list[Any]:
    """Wait until every submitted training and evaluation is done, then return the evaluated models in the
    order submitted. A failed training is raised as itself (its evaluation never ran), before any failed
    evaluation; nothing is left running when the flow fails."""
    wait([future for pair in submitted for future in pair])
    for trained, _ in submitted:
        trained.result()
    return [evaluated.result() for _, evaluated in submitted]


def local_cluster_kwargs(execution: ExecutionConfig) -> dict[str, Any]:
    """``distributed.LocalCluster`` arguments: N worker processes, one task thread each, TensorFlow capped.

    The cap goes into each worker's environment before TensorFlow is imported there (it reads
    ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` once, at start-up); Dask itself already sets
    ``OMP_NUM_THREADS=1`` and friends in its workers.

    Scheduler, workers and dashboard listen on loopback only: Dask's default dashboard address ``:8787`` is
    every interface, which would show the cluster (and its task code) to the whole network.
    """
    tf_threads = str(execution.local_tf_threads(os.cpu_count()))
    return {
        "n_workers": execution.local_workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": LOOPBACK_HOST,
        "dashboard_address": f"{LOOPBACK_HOST}:{DASK_DASHBOARD_PORT}",
        "env": {"TF_NUM_INTRAOP_THREADS": tf_threads, "TF_NUM_INTEROP_THREADS": tf_threads},
    }


def build_task_runner(execution: ExecutionConfig) -> TaskRunner:
    """The task runner ``execution`` asks for; nothing is started or connected until the flow runs."""
    if execution.runner == "sequential":
        return InlineTaskRunner()
    from prefect_dask import DaskTaskRunner

    if execution.dask_address:
        return DaskTaskRunner(address=execution.dask_address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(execution))


def check_scheduler(address: str, timeout_s: float | None = None) -> None:
    """Connect to the Dask scheduler at ``address`` once, or raise a :class:`ConfigError` saying why not."""
    import distributed

    timeout_s = SCHEDULER_CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        with distributed.Client(address, timeout=timeout_s, set_as_default=False) as client:
            workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot reach the Dask scheduler at {address!r}: {reason}") from None
    if workers == 0:
        logger.warning("the Dask scheduler at %s has no workers yet; tasks wait until one joins", address)


def warn_about_relative_paths(artifacts_dir: str, tracking_uri: str) -> None:
    """Workers of a Dask cluster given by address may run elsewhere, where relative paths mean other files."""
    relative = [
        name
        for name, is_relative in (
            (f"artifacts_dir {artifacts_dir!r}", not os.path.isabs(artifacts_dir)),
            (
                f"MLFLOW_TRACKING_URI {tracking_uri!r}",
                tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"),
            ),
        )
        if is_relative
    ]
    if relative:
        logger.warning(
            "%s: relative paths resolve in each Dask worker's own working directory; workers elsewhere need "
            "a shared filesystem (absolute paths) or a tracking server",
            " and ".join(relative),
        )


def run_flow_on(flow, execution: ExecutionConfig, artifacts_dir: str, tracking_uri: str, *args: Any) -> Any:  # noqa: ANN001
    """Run the Prefect ``flow`` on ``args`` with the task runner ``execution`` asks for (the default: sequential,
    in this process); any pipeline's flow whose trainings are submitted to the runner fans out on Dask."""
    if execution.dask_address:
        check_scheduler(execution.dask_address)
        warn_about_relative_paths(artifacts_dir, tracking_uri)
    config = args[0]
    with prefect_api_for_workers(execution), tags(*flow_run_tags(config)):
        return flow.with_options(task_runner=build_task_runner(execution), flow_run_name=flow_run_name(flow, config))(*args)


def flow_run_name(flow, config: Any) -> str:  # noqa: ANN001 - a Prefect flow
    """The flow run's name in Prefect's UI: the flow, the profile and the start time, as the MLflow parent run is
    named (``seqflow-run-quick-20261207-171500``), instead of Prefect's random adjective-animal names."""
    return f"{flow.name}-{config.profile}-{time.strftime('%Y%m%d-%H%M%S')}"


def flow_run_tags(config: Any) -> list[str]:
    """Tags that filter flow runs in Prefect's UI: ``seqflow``, the profile and every architecture trained."""
    return ["seqflow", f"profile:{config.profile}", *(f"arch:{name}" for name in config.training.architectures)]


@contextlib.contextmanager
def prefect_api_for_workers(execution: ExecutionConfig) -> Iterator[None]:
    """Make sure Dask workers report to the same Prefect API as the flow.

    prefect-dask sends the flow's Prefect settings (among them ``PREFECT_API_URL``) with every task. Without a
    configured API, Prefect starts a temporary local server on the first call in each process, so each worker
    would start its own; instead, start it here, once, and send its address. That address is on 127.0.0.1:
    workers on other hosts need ``PREFECT_API_URL`` set to a Prefect server they can reach.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if execution.runner != "dask" or PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    # The same instance Prefect's own client would start (one per process), so the flow uses it too.
    server = SubprocessASGIServer()
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield
