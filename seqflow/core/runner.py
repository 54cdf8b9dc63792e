"""The one sequence every command that runs a pipeline flow follows (``seqflow run``, ``validate``, ``rerun``,
``charlm run``, ``charlm rerun``): everything that can be refused is checked first (the command resolves its
configuration and data source before calling here), then the places it writes, then the output is set up (a
per-run log file, progress on the terminal), the temporary Prefect server starts, the flow runs, and the
closing summary is printed with the links to the execution in MLflow and Prefect.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from seqflow.core import progress
from seqflow.core.prefect_server import start_temporary_server
from seqflow.core.run_output import run_output
from seqflow.core.settings import TrackingSettings
from seqflow.core.stores import require_writable_places

logger = logging.getLogger(__name__)

# The parent run's artifact folder for the run's log file.
LOG_ARTIFACT_DIR = "logs"


@dataclass(frozen=True)
class FlowCall:
    """One resolved command: ``start()`` runs its flow and returns the summary (``render()``, and for an
    execution ``parent_run_id``); ``architectures`` are announced to the progress display first."""

    name: str
    settings: TrackingSettings
    artifacts_dir: str
    start: Callable[[], Any]
    architectures: Sequence[str] = ()
    # False for `validate`: it writes reports and arrays, never to MLflow.
    writes_store: bool = True


# How a command reports its result: (the summary, its text with the links) -> exit status. The CLI's reports
# print the text, or the summary as JSON with --json.
Report = Callable[[Any, str], int]


def print_text(summary: Any, text: str) -> int:
    print(text)
    return 0


def run_flow_command(call: FlowCall, console_level: int = logging.WARNING, report: Report = print_text) -> int:
    """Check the places ``call`` writes, run its flow with the run's output set up, report the summary and the
    links; returns the exit status (errors are raised, for the CLI to print as one line)."""
    require_writable_places(call.settings, call.artifacts_dir, store=call.writes_store)
    file_level = logging.DEBUG if console_level <= logging.DEBUG else logging.INFO
    with run_output(call.artifacts_dir, call.name, console_level, file_level) as output:
        try:
            if call.architectures:
                progress.reporter().plan(call.architectures)
            start_temporary_server()
            summary = call.start()
        except BaseException:
            print(f"full log: {output.log_path}", file=output.terminal)
            raise
    lines = [summary.render(compact=True) if _takes_compact(summary) else summary.render()]
    parent_run_id = getattr(summary, "parent_run_id", None)
    if parent_run_id and call.writes_store:
        lines += _links_and_log(call.settings, parent_run_id, output.log_path)
    lines.append(f"{'log:':12}{output.log_path}")
    status = report(summary, "\n".join(lines))
    sys.stdout.flush()
    return status


def _takes_compact(summary: Any) -> bool:
    import inspect

    return "compact" in inspect.signature(summary.render).parameters


def _links_and_log(settings: TrackingSettings, parent_run_id: str, log_path: Path) -> list[str]:
    """The execution's links, after the log file went to its parent run; a store that cannot be read now only
    costs the links (the execution itself finished)."""
    from seqflow.core.run_links import execution_links
    from seqflow.core.tracking import Tracker

    try:
        client = Tracker(settings).client
        client.log_artifact(parent_run_id, str(log_path), LOG_ARTIFACT_DIR)
        return ["", *execution_links(client, settings.tracking_uri, parent_run_id).lines()]
    except Exception as error:  # noqa: BLE001 - the run is complete; links are a convenience
        logger.warning("could not log the run's log file or read its links: %s", str(error).splitlines()[0])
        return []
