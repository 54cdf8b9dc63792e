"""Ensembles of a run's trained models: which members, how they are combined, and the one Keras classifier
that carries them all (padded ids in, one probability out), exported and served like any architecture's.

Plain NumPy/Keras; the step that tracks it is ``ensemble`` in :mod:`seqflow.tasks.sentiment`. The combination
is fitted on the validation split only: the test split is scored once, by the evaluate step, afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from seqflow.core.errors import SeqflowError
from seqflow.sentiment.config import EnsembleConfig
from seqflow.sentiment.records import TrainedModel

# The architecture name of the ensemble's child run, registered version and comparison row.
ENSEMBLE = "ensemble"
# Tag on the ensemble's run: its members as "architecture=run_id,..." (the runs whose models it carries).
MEMBERS_TAG = "seqflow.ensemble_members"
# L2 penalty of the logistic stack on its member weights (not the bias): keeps two nearly identical members
# from getting large opposite weights on a small validation split.
STACK_L2 = 1.0
STACK_ITERATIONS = 50
# Clip of member probabilities before taking log-odds (the same as the Keras layer's).
EPSILON = 1e-6


def best_validation_loss(history: dict[str, list[float]]) -> float:
    """The lowest finite validation loss of a fit (inf when it has none)."""
    finite = [value for value in history.get("val_loss") or [] if math.isfinite(value)]
    return min(finite) if finite else math.inf


def choose_members(trained: Sequence[TrainedModel], ensemble: EnsembleConfig) -> list[TrainedModel]:
    """The members ``ensemble`` asks for: by name, or the ``size`` models of lowest validation loss. A member
    that was not trained, or whose model file is gone, is refused in one line naming it."""
    by_architecture = {model.architecture: model for model in trained if model.architecture != ENSEMBLE}
    if ensemble.members:
        missing = [name for name in ensemble.members if name not in by_architecture]
        if missing:
            raise SeqflowError(
                f"ensemble: member(s) {missing} were not trained in this run (trained: {sorted(by_architecture)}); "
                "add them to training.architectures or drop them from ensemble.members"
            )
        members = [by_architecture[name] for name in ensemble.members]
    else:
        ranked = sorted(by_architecture.values(), key=lambda model: best_validation_loss(model.history))
        members = [model for model in ranked if math.isfinite(best_validation_loss(model.history))][: ensemble.size]
    if len(members) < 2:
        raise SeqflowError(
            f"ensemble: needs two members with a validation loss, found {[m.architecture for m in members]}; "
            "train another architecture or set ensemble.enabled=false"
        )
    for member in members:
        for path in {member.classifier_path, member.validated_classifier_path}:
            if not Path(path).is_file():
                raise SeqflowError(
                    f"ensemble: member {member.architecture}'s model (run {member.run_id}) is missing: {path} is gone; "
                    "run `seqflow run` again to retrain it"
                )
    return members


def logits(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def fit_stack(probabilities: np.ndarray, labels: np.ndarray) -> tuple[list[float], float]:
    """Logistic regression of ``labels`` on the members' log-odds ``(n, k)`` by Newton's method (L2 on the
    weights): ``(weights, bias)``."""
    features = logits(probabilities)
    y = np.asarray(labels, dtype=np.float64).ravel()
    design = np.hstack([features, np.ones((len(y), 1))])
    penalty = np.diag([STACK_L2] * features.shape[1] + [0.0])
    # Start from the plain mean of log-odds.
    beta = np.append(np.full(features.shape[1], 1.0 / features.shape[1]), 0.0)
    for _ in range(STACK_ITERATIONS):
        p = 1 / (1 + np.exp(-(design @ beta)))
        gradient = design.T @ (p - y) + penalty @ beta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return [float(w) for w in beta[:-1]], float(beta[-1])


def combine(probabilities: np.ndarray, weights: Sequence[float], bias: float) -> np.ndarray:
    """What the saved ensemble computes, in NumPy: the mean, or the stack's sigmoid."""
    if not weights:
        return np.asarray(probabilities, dtype=np.float64).mean(axis=1)
    return 1 / (1 + np.exp(-(logits(probabilities) @ np.asarray(weights) + bias)))


@dataclass(frozen=True)
class EnsembleOutcome:
    classifier_path: Path
    members: list[str]
    weights: list[float]
    bias: float
    # Loss and accuracy of the combination on the validation split (with members that never trained on it).
    validation: dict[str, float]
    seconds: float


def _load(path: Path):  # noqa: ANN202 - a keras.Model
    import keras

    import seqflow.core.optimizers  # noqa: F401 - registers LazyAdam (a member may be compiled with it)
    import seqflow.models.text  # noqa: F401 - registers the custom layers

    return keras.saving.load_model(path, safe_mode=True)


def build_ensemble(
    members: Sequence[TrainedModel], arrays: dict[str, np.ndarray], method: str, batch_size: int, output_dir: Path
) -> EnsembleOutcome:
    """Fit the combination on the validation predictions of the models that chose each member's epochs (never
    trained on validation), build one classifier over the members' final models and save it."""
    import time

    from seqflow.core.evaluation import classification_metrics
    from seqflow.models.architectures import build_ensemble_classifier

    started = time.perf_counter()
    validation = np.hstack([
        np.asarray(_load(m.validated_classifier_path).predict(arrays["x_validation"], batch_size=batch_size, verbose=0))
        .reshape(-1, 1)
        for m in members
    ])
    weights, bias = fit_stack(validation, arrays["y_validation"]) if method == "stack" else ([], 0.0)
    scores = classification_metrics(combine(validation, weights, bias), arrays["y_validation"])
    classifier = build_ensemble_classifier([_load(m.classifier_path) for m in members], weights, bias)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{ENSEMBLE}.keras"
    classifier.save(path)
    return EnsembleOutcome(
        classifier_path=path,
        members=[m.architecture for m in members],
        weights=weights,
        bias=bias,
        validation={"val_loss": scores["loss"], "val_accuracy": scores["accuracy"]},
        seconds=time.perf_counter() - started,
    )
