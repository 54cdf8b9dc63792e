"""Persistent Optuna studies for ``seqflow tune``, for any pipeline: where a study is stored, opening (or resuming)
one, failing the trials a dead process left RUNNING, the pruner, and the plots of a finished search.

A study lives in a real database so that a search can stop and go on: by default an SQLite file beside a SQLite
MLflow store (``optuna.db`` next to ``mlflow.db``); with a tracking server or a PostgreSQL store, ``--storage``
names a database of its own (Optuna's tables, ``alembic_version`` among them, must not share MLflow's database).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from seqflow.core.errors import ConfigError
from seqflow.core.processes import ProcessIdentity, is_gone

logger = logging.getLogger(__name__)

# The default study database, beside a SQLite MLflow store.
STUDY_DB_NAME = "optuna.db"
PRUNERS = ("median", "halving", "none")
# Trial user attribute: the search process that asked for the trial (its host, pid and start time).
OWNER_ATTR = "seqflow.owner"
# Trial user attribute: the MLflow run of the trial.
RUN_ATTR = "seqflow.mlflow_run_id"
# Study user attribute: what the study was started with; a resume with other settings is refused.
IDENTITY_ATTR = "seqflow.identity"


def default_storage(tracking_uri: str) -> str:
    """The study database beside a SQLite MLflow store; other stores need ``--storage``."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        raise ConfigError(
            f"the tracking store {tracking_uri!r} is not a SQLite file, so there is no default place for the study; "
            "pass --storage with a database of its own, e.g. --storage postgresql+psycopg2://USER@DBHOST/optuna "
            "or --storage sqlite:///optuna.db"
        )
    store = Path(tracking_uri[len(prefix):])
    return prefix + str(store.parent / STUDY_DB_NAME)


def make_pruner(name: str, startup_trials: int) -> Any:
    """Median (a trial worse than the median of earlier trials at the same epoch stops), successive halving,
    or none. ``startup_trials`` complete before the median pruner stops any."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    return optuna.pruners.NopPruner()


def open_storage(storage_url: str) -> Any:
    """Optuna's storage at ``storage_url`` (its tables created if missing), or a one-line ConfigError: checked by
    ``seqflow tune`` before anything starts, and opened again by the flow."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return optuna.storages.RDBStorage(storage_url)
    except (SQLAlchemyError, ValueError, ImportError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        from seqflow.core.settings import redact_credentials

        raise ConfigError(f"cannot open the study storage {redact_credentials(storage_url)!r}: {reason}") from None


def open_study(storage_url: str, study_name: str, pruner: Any, seed: int, identity: Mapping[str, Any]) -> Any:
    """Create the study, or load it to go on with it. A study started with another ``identity`` (pipeline,
    architecture, space, base config) is refused: its trials would not be comparable."""
    import optuna

    storage = open_storage(storage_url)
    existing = {summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    finished = 0
    if study_name in existing:
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
        recorded = study.user_attrs.get(IDENTITY_ATTR)
        if recorded != dict(identity):
            changed = sorted(k for k in set(recorded or {}) | set(identity) if (recorded or {}).get(k) != identity.get(k))
            raise ConfigError(
                f"study {study_name!r} was started with other settings ({', '.join(changed)} differ); "
                "resume it with the same command, or start another with --study NAME"
            )
        finished = len(study.trials)
    # Seeded by the trials already asked: a resumed search does not draw its first trials again.
    sampler = optuna.samplers.TPESampler(seed=seed + finished)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize", sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    if study_name not in existing:
        study.set_user_attr(IDENTITY_ATTR, dict(identity))
    return study


def fail_trials_of_dead_processes(study: Any) -> list[int]:
    """Mark FAIL every RUNNING trial whose search process (on this host) is gone; returns their numbers.

    A search killed outright (``kill -9``) leaves its trials in flight RUNNING; they are lost, the others were
    told their result as they finished. Trials of live searches and of other hosts are left alone."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(OWNER_ATTR)
        identity = ProcessIdentity(**owner) if isinstance(owner, dict) else None
        if identity is None or not is_gone(identity):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "seqflow.failed_reason", f"search process {identity.describe()} is gone")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        failed.append(trial.number)
    if failed:
        logger.warning("study %s: marked trial(s) %s FAIL: the search that ran them is gone", study.study_name, failed)
    return failed


def counted_trials(study: Any) -> int:
    """Trials that count towards ``--trials``: completed and pruned ones (failed ones are retried)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


@dataclass(frozen=True)
class TrialResult:
    """What one trial reports back to the search: its number, state and value, and its MLflow run."""

    number: int
    state: str
    value: float | None
    run_id: str
    epochs: int
    note: str = ""


def best_trial(study: Any) -> Any | None:
    """The best completed trial, or None when none completed."""
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(completed, key=lambda trial: trial.value) if completed else None


def plot_study(study: Any, output_dir: Path) -> list[Path]:
    """Optimisation history, parameter importances and per-epoch curves of ``study`` as PNG files; a plot
    that cannot be drawn yet (importances need two completed trials with different values) is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as plots

    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (
        ("optimisation_history", plots.plot_optimization_history),
        ("param_importances", plots.plot_param_importances),
        ("intermediate_values", plots.plot_intermediate_values),
    ):
        try:
            with warnings.catch_warnings():
                # Optuna marks its matplotlib plots experimental, on every call.
                warnings.simplefilter("ignore")
                axes = draw(study)
        except Exception as error:  # noqa: BLE001 - a plot is not worth failing the search for
            logger.info("study %s: no %s plot (%s)", study.study_name, name, str(error).splitlines()[0] if str(error) else type(error).__name__)
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        path = output_dir / f"{name}.png"
        figure.savefig(path, bbox_inches="tight", dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def trials_table(study: Any) -> str:
    """Every trial of the study as JSON lines: number, state, value, parameters (logged to the parent run)."""
    rows = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
         "mlflow_run_id": t.user_attrs.get(RUN_ATTR), "epochs": len(t.intermediate_values)}
        for t in study.get_trials(deepcopy=False)
    ]
    return "\n".join(json.dumps(row, default=str) for row in rows) + "\n"
