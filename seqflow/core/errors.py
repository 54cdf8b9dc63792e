"""Errors that seqflow reports to users as one clear message instead of a library traceback.

Every error raised on purpose derives from :class:`SeqflowError`; the CLI prints its message and exits
non-zero without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SeqflowError(Exception):
    """Base class for errors whose message is meant for the person running seqflow."""

    exit_code = 2


class ConfigError(SeqflowError):
    """A profile, override or environment setting is unknown or has the wrong type."""


class DataSourceError(SeqflowError):
    """A data source spec cannot be read: missing file, wrong columns, unreadable archive, no network."""


class ContractViolation(SeqflowError):
    """A data contract (Great Expectations suite) failed; the message names suite, expectation and rows."""

    exit_code = 3

    def __init__(self, message: str, report_path: str | None = None) -> None:
        super().__init__(message)
        self.report_path = report_path
