"""``seqflow schedule``: serve the pipeline's deployment on a cron schedule from this process (no work pool).

The served deployment is the one ``prefect.yaml`` describes for work pools: flow ``seqflow-pipeline``
(:func:`seqflow.flows.deployment.scheduled_pipeline`), deployment ``nightly`` by default, parameters ``profile``,
``overrides`` and ``env_file``. Flow runs execute in subprocesses of this one, in its working directory.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import warnings

from seqflow.core.errors import ConfigError

# Upcoming runs printed before serving, so a wrong expression or time zone shows at once.
SHOWN_NEXT_RUNS = 3
CRON_HELP = 'five fields, minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 every day'


class ShutdownCancellationFilter(logging.Filter):
    """Drops asyncio's "Exception in callback" records for a task cancelled because the process is exiting.

    Prefect's runner handles SIGTERM by calling ``sys.exit(0)`` from inside the event loop. If a control-channel
    connection is being set up at that moment, its task is cancelled while ``SystemExit`` propagates, and asyncio
    logs the ``CancelledError`` (whose ``__context__`` is that ``SystemExit``) with a full traceback although the
    deployment is paused and the process exits 0. Only exactly that record is dropped; every other asyncio
    error still reaches the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, asyncio.CancelledError) and isinstance(error.__context__, SystemExit))


def next_run_times(cron: str, timezone: str, count: int = SHOWN_NEXT_RUNS) -> list[datetime.datetime]:
    """The next ``count`` times ``cron`` fires in ``timezone``, computed as Prefect's scheduler computes them;
    a ConfigError for an expression or time zone Prefect would refuse."""
    from pydantic import ValidationError

    # The server's schedule model: the same validation and date arithmetic as the scheduler that creates runs.
    from prefect.server.schemas.schedules import CronSchedule

    if len(cron.split()) != 5:
        raise ConfigError(f"invalid cron expression {cron!r}: {CRON_HELP}")
    try:
        schedule = CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        problem = exc.errors()[0]
        if "timezone" in problem["msg"].lower():
            raise ConfigError(f"unknown time zone {timezone!r}; use an IANA name such as UTC or Europe/Berlin") from None
        raise ConfigError(f"invalid cron expression {cron!r}: {CRON_HELP}") from None
    return list(asyncio.run(schedule.get_dates(n=count)))


def serve_schedule(
    name: str, cron: str, timezone: str, profile: str | None, overrides: dict[str, str], env_file: str | None
) -> int:
    """Create (or update) the deployment with this cron schedule and run its flow runs until stopped."""
    upcoming = next_run_times(cron, timezone)
    from prefect.schedules import Cron
    from prefect.settings import PREFECT_API_URL

    from seqflow.flows.deployment import scheduled_pipeline

    parameters = {"profile": profile, "overrides": overrides, "env_file": env_file}
    deployment = f"{scheduled_pipeline.name}/{name}"
    api_url = PREFECT_API_URL.value()
    print(f"serving deployment {deployment!r} on {api_url or 'a temporary Prefect server (set PREFECT_API_URL)'}")
    print(f"  cron {cron!r} ({timezone}); parameters {parameters}")
    print("  next runs: " + ", ".join(moment.isoformat(timespec="minutes") for moment in upcoming))
    print(f"  run now:   prefect deployment run {deployment!r}; stop with Ctrl-C or SIGTERM", flush=True)
    if not api_url:
        print("warning: without PREFECT_API_URL the deployment lives only as long as this process", flush=True)
    asyncio_logger = logging.getLogger("asyncio")
    shutdown_noise = ShutdownCancellationFilter()
    asyncio_logger.addFilter(shutdown_noise)
    with warnings.catch_warnings():
        # Prefect's SIGTERM handler calls the runner's async stop without awaiting it, then exits; the
        # deployment is usually paused on the way out. Its "never awaited" warning is noise in a service log.
        warnings.filterwarnings("ignore", message="coroutine 'Runner.astop' was never awaited")
        try:
            scheduled_pipeline.serve(
                name=name,
                schedule=Cron(cron, timezone=timezone),
                parameters=parameters,
                description=f"seqflow schedule --cron {cron!r}, served from {os.getcwd()}",
                print_starting_message=False,
            )
        finally:
            asyncio_logger.removeFilter(shutdown_noise)
            print(f"stopped serving {deployment!r}", flush=True)
    return 0
