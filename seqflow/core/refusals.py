"""How a served model refuses input it cannot score, for every pipeline's pyfunc: one error that the CLI prints as
one line and MLflow's scoring server answers as HTTP 400 with this message, naming the rows at fault."""

from __future__ import annotations

from typing import Sequence

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from seqflow.core.errors import SeqflowError

# Rows named in a refusal, and characters of each row's text shown; the count of all refused rows is always given.
REFUSED_ROWS_SHOWN = 10
REFUSED_TEXT_PREVIEW_CHARS = 40


class InputRefused(SeqflowError, MlflowException):
    """A served model refuses its input. Both kinds of error at once: the ``seqflow`` CLI prints a SeqflowError
    as one line (exit code 2), and MLflow's scoring server answers an MlflowException with
    INVALID_PARAMETER_VALUE as HTTP 400 carrying this message (any other exception becomes a 400 with a generic
    message and a traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def describe_rows(rows: Sequence[int], values: Sequence[object]) -> str:
    """``row 2 of 5 ('!!!'), row 4 of 5 ('')`` for 0-based ``rows`` of ``values``: counted from 1, as people
    (and the CLI's TEXT arguments) count; at most REFUSED_ROWS_SHOWN of them, then how many more."""
    shown = [
        f"row {row + 1} of {len(values)} ({str(values[row])[:REFUSED_TEXT_PREVIEW_CHARS]!r})"
        for row in rows[:REFUSED_ROWS_SHOWN]
    ]
    more = f" and {len(rows) - REFUSED_ROWS_SHOWN} more" if len(rows) > REFUSED_ROWS_SHOWN else ""
    return ", ".join(shown) + more
