"""The MLflow side of training one architecture, the same for every pipeline: its child run under the
execution's parent run, the training fingerprint that names it (and finds the checkpoint of an interrupted
training), and what the fit left behind (resumed epochs, timings, learning curves, history).

Light on purpose: a train task imports it, so its code is part of every training's cache key (see
:mod:`seqflow.core.caching`); it knows no pipeline and no comparison table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seqflow.core.fitting import checkpoint_dir_for
from seqflow.core.runs import FLOW_RUN_TAG, ROLE_TAG
from seqflow.core.tracking import Tracker

# Metric (a tag before) of each architecture's run: epochs taken over from an interrupted earlier training (0:
# trained from scratch).
RESUMED_FROM_EPOCH_TAG = "resumed_from_epoch"
# Tag on each architecture's run: names its training (data, architecture, settings, seed); see the pipelines'
# training fingerprints.
FINGERPRINT_TAG = "seqflow.training_fingerprint"


def start_architecture_run(
    tracker: Tracker,
    role: str,
    architecture: str,
    parent_run_id: str,
    flow_run_id: str | None,
    profile: str,
    tags: dict[str, str],
    run_name: str | None = None,
) -> str:
    """The child run (of ``role``, the pipeline's architecture role) of one architecture under the parent run,
    named ``run_name`` (default: the architecture)."""
    return tracker.start_run(
        run_name=run_name or architecture,
        tags={ROLE_TAG: role, "architecture": architecture, FLOW_RUN_TAG: flow_run_id, "profile": profile, **tags},
        parent_run_id=parent_run_id,
    )


def tag_training(tracker: Tracker, run_id: str, fingerprint: str, artifacts_dir: str | Path, checkpoint: bool) -> Path | None:
    """Tag the run with its training ``fingerprint``; returns where that training keeps its per-epoch checkpoint
    (``None`` when checkpoints are off)."""
    tracker.set_tags(run_id, {FINGERPRINT_TAG: fingerprint})
    return checkpoint_dir_for(artifacts_dir, fingerprint) if checkpoint else None


def log_fit_outcome(
    tracker: Tracker,
    run_id: str,
    architecture: str,
    outcome: Any,
    output_dir: Path,
    metrics: dict[str, float] | None = None,
    curve_metrics: tuple[str, str] = ("loss", "accuracy"),
) -> None:
    """What a fit left behind, on its run: the epochs it resumed from and its timings (metrics) and ``metrics``, the learning
    curves of ``curve_metrics`` (training against validation) and the history as ``history.json``.

    ``outcome`` is a pipeline's training outcome: ``resumed_from_epoch``, ``seconds``, ``seconds_per_epoch`` and
    ``history`` (metric -> one value per epoch)."""
    from seqflow.core.evaluation import plot_learning_curves

    tracker.log_metrics(
        run_id,
        {
            RESUMED_FROM_EPOCH_TAG: outcome.resumed_from_epoch, "seconds_per_epoch": outcome.seconds_per_epoch,
            "train_seconds": outcome.seconds, **(metrics or {}),
        },
    )
    curves = plot_learning_curves(
        outcome.history, f"{architecture}: training vs validation", output_dir / "learning_curves.png", metrics=curve_metrics
    )
    tracker.log_artifact(run_id, curves, "plots")
    tracker.log_text(run_id, json.dumps(outcome.history, indent=2), "history.json")
