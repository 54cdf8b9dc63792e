"""Retry policy shared by I/O tasks."""

from __future__ import annotations

from typing import Any

from seqflow.core.errors import SeqflowError


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures, never a :class:`SeqflowError` (bad input)."""
    try:
        state.result()
    except SeqflowError:
        return False
    except Exception:  # noqa: BLE001 - any other failure may be transient (disk, network)
        return True
    return True
