"""Logging helpers applied by the CLI (never on import)."""

from __future__ import annotations

import logging
from typing import Iterable

from seqflow.core.errors import SeqflowError

# Loggers through which Prefect reports a failed task or flow, with the exception's traceback attached.
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")


class DropTracebackOfExpectedErrors(logging.Filter):
    """Shorten Prefect's records about a :class:`SeqflowError` to their first line, without traceback.

    A failed contract or a missing file is reported once, in full, by the CLI; Prefect logs the same failure
    for the task and again for the flow, and those copies should point at it rather than repeat it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], SeqflowError):
            record.exc_info = None
            record.exc_text = None
        message = record.getMessage()
        # Prefect embeds the exception's repr, where a multi-line message shows as literal "\n".
        for newline in ("\\n", "\n"):
            if newline in message:
                record.msg, record.args = message.split(newline)[0] + " ...", ()
                break
        return True


class BelowLevelFromLibraries(logging.Filter):
    """Drop records under ``level`` from the named libraries, whatever level they set on their own loggers."""

    def __init__(self, names: Iterable[str], level: int = logging.WARNING) -> None:
        super().__init__()
        self.prefixes = tuple(names)
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        return not any(record.name == name or record.name.startswith(name + ".") for name in self.prefixes)


class RunNameFormatter(logging.Formatter):
    """Show which Prefect task or flow run a record belongs to (Prefect passes it as ``extra``)."""

    def format(self, record: logging.LogRecord) -> str:
        run_name = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        formatted = super().format(record)
        return formatted.replace(f"{record.name}: ", f"{record.name} [{run_name}]: ", 1) if run_name else formatted


def quiet_libraries(noisy_logger_names: Iterable[str]) -> None:
    """Install both filters: on Prefect's run loggers, and on every handler of the root logger."""
    expected_errors_filter = DropTracebackOfExpectedErrors()
    for name in PREFECT_RUN_LOGGERS:
        logging.getLogger(name).addFilter(expected_errors_filter)
    noise_filter = BelowLevelFromLibraries(noisy_logger_names)
    for handler in logging.getLogger().handlers:
        handler.addFilter(noise_filter)
