"""``Tracker``: one object for everything seqflow does with MLflow, made of the split tracking concerns.

Each concern lives in its own module and can be used on its own: the connection (:mod:`seqflow.core.store`),
run lifecycle and dead-owner recovery (:mod:`seqflow.core.runs`), logging (:mod:`seqflow.core.run_logging`),
the model registry and champion history (:mod:`seqflow.core.model_registry`), logged models and serving
(:mod:`seqflow.core.models`). Registration and promotion for any pipeline are in :mod:`seqflow.core.registry`.

The names below stay importable from here for the code and tests written against the single tracker.
"""

from __future__ import annotations

from seqflow.core.model_registry import (
    CHAMPION_ALIAS,
    CHAMPION_HISTORY_MAX_CHARS,
    CHAMPION_HISTORY_TAG,
    PREVIOUS_CHAMPION_TAG,
    SEARCH_MAX_RESULTS,
    ModelRegistry,
    RegisteredVersion,
    _bounded_history,
)
from seqflow.core.models import MODEL_ARTIFACT_PATH, ModelFiles, _serving_requirements
from seqflow.core.run_logging import PARAMS_PER_BATCH, RunLogger
from seqflow.core.runs import (
    CLOSED_REASON_TAG,
    EXECUTION_ROLES,
    FLOW_RUN_TAG,
    ROLE_TAG,
    ClosedRun,
    RunLifecycle,
    end_open_runs,
    ended_status,
    git_commit,
    open_runs,
)
from seqflow.core.store import SQLITE_LOCK_SUFFIX, TrackingError, TrackingStore, _fluent_store

__all__ = [
    "CHAMPION_ALIAS", "CHAMPION_HISTORY_MAX_CHARS", "CHAMPION_HISTORY_TAG", "CLOSED_REASON_TAG", "EXECUTION_ROLES",
    "FLOW_RUN_TAG", "MODEL_ARTIFACT_PATH", "PARAMS_PER_BATCH", "PREVIOUS_CHAMPION_TAG", "ROLE_TAG",
    "SEARCH_MAX_RESULTS", "SQLITE_LOCK_SUFFIX", "ClosedRun", "ModelFiles", "ModelRegistry", "RegisteredVersion",
    "RunLifecycle", "RunLogger", "Tracker", "TrackingError", "TrackingStore", "_bounded_history", "_fluent_store",
    "_serving_requirements", "end_open_runs", "ended_status", "git_commit", "open_runs",
]


class Tracker(RunLifecycle, RunLogger, ModelFiles):
    """An MLflow tracking store plus registry, as configured by ``mlflow.env``: every concern on one
    connection (one client, one experiment)."""
