"""Errors that seqflow reports to users as one clear message instead of a library traceback.

Every error raised on purpose derives from :class:`SeqflowError`; the CLI prints its message and exits
non-zero without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit statuses of ``seqflow``, in one place: the errors below carry them, ``seqflow.cli.main`` returns
    them, and every command's ``--help`` lists the ones it can end with (:data:`EXIT_MEANINGS`)."""

    OK = 0
    # An exception seqflow did not expect: Python prints its traceback and exits 1.
    BUG = 1
    # Also argparse's status for a command line it cannot parse.
    REFUSED = 2
    CONTRACT_FAILED = 3
    GATE_REFUSED = 4
    # 128 + the signal number, as shells report a process ended by a signal.
    INTERRUPTED = 130
    TERMINATED = 143


# What each exit status means, as every command's --help shows it.
EXIT_MEANINGS = {
    ExitCode.OK: "done",
    ExitCode.BUG: "unexpected error: a bug (Python's traceback is printed; please report it)",
    ExitCode.REFUSED: "refused, with one line saying why and what to do (bad option, setting, source or store)",
    ExitCode.CONTRACT_FAILED: "a data contract failed; the line names the suite, expectation and report",
    ExitCode.GATE_REFUSED: "a promotion gate refused to move the alias (--force --reason overrides it)",
    ExitCode.INTERRUPTED: "stopped by Ctrl-C (SIGINT); open MLflow runs are marked KILLED",
    ExitCode.TERMINATED: "stopped by SIGTERM; open MLflow runs are marked KILLED",
}


class SeqflowError(Exception):
    """Base class for errors whose message is meant for the person running seqflow."""

    exit_code = ExitCode.REFUSED


class ConfigError(SeqflowError):
    """A profile, override or environment setting is unknown or has the wrong type."""


class DataSourceError(SeqflowError):
    """A data source spec cannot be read: missing file, wrong columns, unreadable archive, no network."""


class ContractViolation(SeqflowError):
    """A data contract (Great Expectations suite) failed; the message names suite, expectation and rows."""

    exit_code = ExitCode.CONTRACT_FAILED

    def __init__(self, message: str, report_path: str | None = None) -> None:
        super().__init__(message)
        self.report_path = report_path
