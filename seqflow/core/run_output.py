"""Where a run's output goes: the terminal gets the progress and seqflow's own warnings, a per-run log file gets
everything.

While a run is inside :func:`run_output`, file descriptors 1 and 2 point at the run's log file, so whatever a
library prints there (TensorFlow's C++ lines and oneDNN banner, printed before Python logging exists;
warnings; Prefect's state lines; the temporary server's start-up) lands in the log, not on the terminal. The
terminal keeps its own copy of the original standard error: the progress reporter draws there, and seqflow's
log records at the console level (WARNING by default, INFO with ``-v``) are written there too. The log file
also gets every log record at INFO (DEBUG with ``--log-level DEBUG``), libraries included.

seqflow's records are also sent to the Prefect flow run's logs (Prefect's API log handler on the ``seqflow``
logger), so the Logs tab of a flow run tells the same story as the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from seqflow.core import progress
from seqflow.core.logs import BelowLevelFromLibraries, RunNameFormatter
from seqflow.core.settings import TrackingSettings, redact_credentials

# seqflow's own loggers: on the terminal at the console level; everything else goes only to the log file.
SEQFLOW_LOGGER = "seqflow"
# The name of the CLI's terminal handler (seqflow.cli.configure_runtime): the one a run points at the terminal.
CONSOLE_HANDLER = "seqflow-console"
# Kept out of the log file: Prefect's client logs every request at INFO (one per batch of log lines it sends),
# and Great Expectations logs ~200 INFO lines a run about registering its own API docs and metrics.
LOG_FILE_NOISE = ("httpx", "httpcore", "great_expectations._docs_decorators", "great_expectations.expectations.registry")
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@dataclass(frozen=True)
class RunOutput:
    """An open run output: the log file and the terminal stream the reporter draws on."""

    log_path: Path
    terminal: TextIO


class OnlySeqflow(logging.Filter):
    """For the terminal: seqflow's own records, and a library's only at ERROR and above (the log file has all).
    The progress events' INFO records are left out: the progress display shows those events itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == progress.logger.name:
            return record.levelno != logging.INFO
        if record.name == SEQFLOW_LOGGER or record.name.startswith(SEQFLOW_LOGGER + "."):
            return True
        return record.levelno >= logging.ERROR


class RedactingFormatter(RunNameFormatter):
    """The log file's lines with the user name and password of every URL replaced (the file goes to MLflow)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_credentials(super().format(record))


def new_log_path(artifacts_dir: str | Path, name: str) -> Path:
    """``<artifacts_dir>/logs/<name>-<time>-<pid>.log``: one file per run, never shared by two processes."""
    folder = Path(artifacts_dir) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


@contextlib.contextmanager
def _descriptors_into(log_path: Path) -> Iterator[TextIO]:
    """Point descriptors 1 and 2 at ``log_path`` while inside; yields a text stream on the original stderr."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        yield terminal
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(log_fd)
        terminal.close()


@contextlib.contextmanager
def library_output_into_log(settings: TrackingSettings, name: str) -> Iterator[Path]:
    """For a short command that loads a model (``predict``, ``generate``): what libraries print while inside
    (TensorFlow's C++ lines and oneDNN banner, which it prints before any Python logging can stop it, MLflow's
    warnings and download bars) goes to ``<artifacts_dir>/logs/<name>-<time>-<pid>.log`` instead of the terminal.
    The command prints its result and any error after leaving, on the real descriptors. ``artifacts_dir`` is
    the one a run of the same settings writes to (``SEQFLOW_ARTIFACTS_DIR``, else the default)."""
    from seqflow.core.config import RunSettings

    artifacts_dir = dict(settings.config_overrides).get("artifacts_dir") or RunSettings.artifacts_dir
    log_path = new_log_path(artifacts_dir, name)
    with _descriptors_into(log_path):
        yield log_path


class InPrefectRun(logging.Filter):
    """Pass records logged inside a Prefect flow or task run (the API handler has nowhere to send the others)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _prefect_log_handler() -> logging.Handler:
    """Prefect's API log handler: records sent to the current flow run's logs, records outside a run dropped."""
    from prefect.logging.handlers import APILogHandler

    handler = APILogHandler()
    handler.addFilter(InPrefectRun())
    return handler


@contextlib.contextmanager
def run_output(artifacts_dir: str | Path, name: str, console_level: int, file_level: int = logging.INFO) -> Iterator[RunOutput]:
    """The run's output while inside (see the module docstring); the progress reporter is installed for it."""
    log_path = new_log_path(artifacts_dir, name)
    root = logging.getLogger()
    saved_root_level = root.level
    consoles = [handler for handler in root.handlers if handler.name == CONSOLE_HANDLER]
    with _descriptors_into(log_path) as terminal:
        file_handler = logging.FileHandler(log_path, encoding="utf-8")
        file_handler.setLevel(file_level)
        file_handler.setFormatter(RedactingFormatter(LOG_FORMAT, datefmt="%H:%M:%S"))
        file_handler.addFilter(BelowLevelFromLibraries(LOG_FILE_NOISE))
        reporter = progress.reporter_for(terminal)
        saved_streams = []
        for handler in consoles:
            saved_streams.append((handler, handler.stream, handler.level))
            handler.setStream(reporter.log_stream(terminal))
            handler.setLevel(console_level)
        root.addHandler(file_handler)
        root.setLevel(min(console_level, file_level))
        logging.captureWarnings(True)
        seqflow_logger = logging.getLogger(SEQFLOW_LOGGER)
        prefect_handler = _prefect_log_handler()
        prefect_handler.setLevel(logging.INFO)
        seqflow_logger.addHandler(prefect_handler)
        uninstall = progress.install(reporter)
        try:
            yield RunOutput(log_path, terminal)
        finally:
            uninstall()
            seqflow_logger.removeHandler(prefect_handler)
            logging.captureWarnings(False)
            root.removeHandler(file_handler)
            file_handler.close()
            root.setLevel(saved_root_level)
            for handler, stream, level in saved_streams:
                handler.setStream(stream)
                handler.setLevel(level)


# -q / -v / --log-level: what the terminal shows, accepted anywhere on the command line.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
QUIET_FLAGS = ("-q", "--quiet")
VERBOSE_FLAGS = ("-v", "--verbose")


def take_output_options(argv: Sequence[str]) -> tuple[list[str], int | None]:
    """``argv`` without -q/--quiet, -v/--verbose (-vv: DEBUG) and --log-level LEVEL wherever they stand (up to a
    ``--``), and the console level they ask for (None: none given; the last one wins). A bad level is left in
    place for the parser to refuse."""
    rest: list[str] = []
    level: int | None = None
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item == "--":
            rest += items[index:]
            break
        if item in QUIET_FLAGS:
            level = logging.ERROR
        elif item in VERBOSE_FLAGS or item == "-vv":
            level = logging.DEBUG if item == "-vv" else logging.INFO
        elif item == "--log-level" and index + 1 < len(items) and items[index + 1].upper() in LOG_LEVELS:
            level = getattr(logging, items[index + 1].upper())
            index += 1
        elif item.startswith("--log-level=") and item.partition("=")[2].upper() in LOG_LEVELS:
            level = getattr(logging, item.partition("=")[2].upper())
        else:
            rest.append(item)
        index += 1
    return rest, level
