"""The champion alias by hand: show it, promote a version, roll back, with the pipeline's gates and an audit trail.

``seqflow run`` and ``seqflow promote`` apply the same gates (:func:`seqflow.core.promotion.decide_promotion`, on
accuracies measured on the same test data: :func:`champion_accuracy_on`). Every move of the alias tags the new
champion with who, when, why and through what, and is appended to the registered model's champion history,
which is what ``seqflow rollback`` goes back along. Moves are all or nothing (:meth:`Tracker.set_champion`).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from seqflow.config import PromotionConfig
from seqflow.core.errors import SeqflowError
from seqflow.core.promotion import FLOOR_GATE, PromotionDecision, decide_promotion
from seqflow.core.tracking import CHAMPION_ALIAS, Tracker

logger = logging.getLogger(__name__)

VIA_RUN = "seqflow run"
VIA_PROMOTE = "seqflow promote"
VIA_ROLLBACK = "seqflow rollback"
# Version tags written on every move of the alias (``promotion_reason`` is the person's or the gates' words).
AUDIT_KEYS = ("promoted_by", "promoted_at", "promoted_via", "promotion_reason", "previous_champion")


class PromotionRefused(SeqflowError):
    """A gate refused to move the champion alias; ``--force --reason`` overrides it."""

    exit_code = 4


def current_user() -> str:
    """``user@host`` of this process, for the audit tags."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (some containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def audit_tags(reason: str, via: str, previous_champion: str | None) -> dict[str, str]:
    """Who moved the alias, when (ISO 8601, UTC), why, through which command, and from which version."""
    return {
        "promoted_by": current_user(),
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "promoted_via": via,
        "promotion_reason": reason,
        "previous_champion": previous_champion or "",
    }


def champion_accuracy_on(
    tracker: Tracker, champion, dataset_digest: str, locate_test_split: Callable[[], Path]  # noqa: ANN001
) -> float:
    """The champion's test accuracy on the test split of the data ``dataset_digest``: from its tags if it was
    measured on the same data, otherwise by scoring the champion model now on the split ``locate_test_split``
    returns (only called then)."""
    tags = champion.tags or {}
    if tags.get("dataset_digest") == dataset_digest and "test_accuracy" in tags:
        return float(tags["test_accuracy"])
    import pandas as pd

    from seqflow.core.evaluation import classification_metrics
    from seqflow.sentiment.serving import REVIEW_SENTIMENT

    test_path = locate_test_split()
    test = pd.read_parquet(test_path)
    logger.info("champion v%s was measured on other data; scoring it on %s", champion.version, test_path)
    model = tracker.load_pyfunc(
        f"models:/{tracker.settings.registered_model_name}/{champion.version}", REVIEW_SENTIMENT,
        needed_by="re-scoring the champion",
    )
    predictions = model.predict(pd.DataFrame({"text": test["text"].tolist()}))
    return classification_metrics(predictions["probability"].to_numpy(), test["label"].to_numpy())["accuracy"]


def _test_accuracy(version) -> float:  # noqa: ANN001 - mlflow ModelVersion
    recorded = (version.tags or {}).get("test_accuracy")
    if recorded is None:
        raise SeqflowError(
            f"version {version.version} has no test_accuracy tag (not registered by `seqflow run`), so the gates "
            "cannot be checked; use --force --reason TEXT to promote it anyway"
        )
    return float(recorded)


def _test_split_of(tracker: Tracker, version) -> Path:  # noqa: ANN001 - mlflow ModelVersion
    """The test split ``version`` was scored on, found where its run wrote it and checked against its digest."""
    from seqflow.sentiment.datasets import content_digest, dataset_dir_of

    tags = version.tags or {}
    params, _ = tracker.run_data(version.run_id)
    if "artifacts_dir" not in params or "dataset_digest" not in tags:
        raise SeqflowError(f"version {version.version} does not record where its test split is (no artifacts_dir "
                           "param or dataset_digest tag)")
    test_path = dataset_dir_of(params["artifacts_dir"], tags["dataset_digest"]) / "test.parquet"
    if not test_path.is_file():
        raise SeqflowError(
            f"the champion was measured on other data than version {version.version}, and v{version.version}'s test "
            f"split {str(test_path)!r} is not on this machine to score both on the same data; run this where the "
            "pipeline ran, or use --force --reason TEXT"
        )
    import pandas as pd

    if "test_digest" in tags and content_digest(pd.read_parquet(test_path)) != tags["test_digest"]:
        raise SeqflowError(f"test split {str(test_path)!r} no longer matches version {version.version}'s test_digest")
    return test_path


def _gates_for(tracker: Tracker, version, champion, promotion: PromotionConfig) -> PromotionDecision:  # noqa: ANN001
    """The pipeline's decision for ``version`` against ``champion``, both measured on ``version``'s test split."""
    accuracy = _test_accuracy(version)
    champion_accuracy = None
    if champion is not None:
        champion_accuracy = champion_accuracy_on(
            tracker, champion, (version.tags or {}).get("dataset_digest", ""), lambda: _test_split_of(tracker, version)
        )
    return decide_promotion(
        str(version.version),
        accuracy,
        str(champion.version) if champion is not None else None,
        champion_accuracy,
        promotion,
    )


@dataclass(frozen=True)
class AliasMove:
    """One move of the champion alias by hand."""

    registered_model_name: str
    version: str
    previous_version: str | None
    gates: str
    forced: bool
    audit: dict[str, str]

    def render(self) -> str:
        lines = [
            f"champion:  {self.registered_model_name}@{CHAMPION_ALIAS} = v{self.version} (was "
            f"{'v' + self.previous_version if self.previous_version else 'none'})",
            f"gates:     {'FORCED past: ' if self.forced else ''}{self.gates}",
            f"audit:     {self.audit['promoted_via']} by {self.audit['promoted_by']} at {self.audit['promoted_at']}: "
            f"{self.audit['promotion_reason']}",
        ]
        return "\n".join(lines)


def _refusal(decision: PromotionDecision, action: str) -> PromotionRefused:
    return PromotionRefused(
        f"{action} refused by the promotion.{decision.refused_by} gate: {decision.reason}. "
        "Use --force --reason TEXT to override (recorded in the audit tags)"
    )


def _move(
    tracker: Tracker, version: str, champion, decision_text: str, forced: bool, reason: str | None, via: str, action: str
) -> AliasMove:  # noqa: ANN001
    previous = str(champion.version) if champion is not None else None
    audit = audit_tags(reason or decision_text, via, previous) | {
        "promotion_gates": decision_text,
        "promotion_forced": str(forced).lower(),
    }
    tracker.set_champion(version, audit, action=action)
    return AliasMove(tracker.settings.registered_model_name, version, previous, decision_text, forced, audit)


def promote_version(
    tracker: Tracker, version: str, promotion: PromotionConfig, reason: str | None = None, force: bool = False
) -> AliasMove:
    """Move ``champion`` to ``version`` if it passes the pipeline's gates (or ``force`` with a ``reason``)."""
    if force and not reason:
        raise SeqflowError("--force needs --reason TEXT: an overridden gate is recorded with why")
    target = tracker.model_version(version)
    champion = tracker.champion()
    if champion is not None and str(champion.version) == str(target.version):
        raise SeqflowError(f"version {target.version} is already {tracker.settings.registered_model_name}@{CHAMPION_ALIAS}")
    try:
        decision = _gates_for(tracker, target, champion, promotion)
    except SeqflowError as error:
        if not force:
            raise
        return _move(tracker, str(target.version), champion, f"not checked: {error}", True, reason, VIA_PROMOTE, "promote")
    if not decision.promote and not force:
        raise _refusal(decision, f"promoting v{target.version}")
    return _move(tracker, str(target.version), champion, decision.reason, not decision.promote, reason, VIA_PROMOTE, "promote")


def champion_lineage(history: list[dict[str, str]]) -> list[str]:
    """The champions that rollback can go back through, oldest first, the current one last.

    A promotion puts a version on top; a rollback takes versions off until the one it went back to is on top.
    """
    lineage: list[str] = []
    if history and history[0].get("previous_champion"):
        lineage.append(history[0]["previous_champion"])
    for entry in history:
        if entry.get("action") == "rollback":
            while lineage and lineage[-1] != entry["version"]:
                lineage.pop()
            if not lineage:
                lineage.append(entry["version"])
        else:
            lineage.append(entry["version"])
    return lineage


def rollback(tracker: Tracker, promotion: PromotionConfig, reason: str | None = None, force: bool = False) -> AliasMove:
    """Move ``champion`` back to the champion before the current one.

    Gate: the accuracy floor (the version was champion before; it need not beat the one it replaces, which
    was promoted for beating it). ``force`` with a ``reason`` overrides the floor.
    """
    if force and not reason:
        raise SeqflowError("--force needs --reason TEXT: an overridden gate is recorded with why")
    name = tracker.settings.registered_model_name
    champion = tracker.champion()
    if champion is None:
        raise SeqflowError(f"registered model {name!r} has no {CHAMPION_ALIAS!r} alias in {tracker.settings.tracking_uri}")
    lineage = champion_lineage(tracker.champion_history())
    if not lineage or lineage[-1] != str(champion.version):
        raise SeqflowError(
            f"{name}@{CHAMPION_ALIAS} is v{champion.version}, but the champion history "
            f"{'ends at v' + lineage[-1] if lineage else 'is empty'}: the alias was moved outside seqflow, so there is "
            "no recorded champion to roll back to; use `seqflow promote VERSION`"
        )
    if len(lineage) < 2:
        raise SeqflowError(f"nothing to roll back to: v{champion.version} is the first recorded champion of {name!r}")
    target = tracker.model_version(lineage[-2])
    decision = decide_promotion(str(target.version), _test_accuracy(target), None, None, promotion)
    if decision.refused_by == FLOOR_GATE and not force:
        raise _refusal(decision, f"rolling back to v{target.version}")
    gates = (
        decision.reason
        if decision.refused_by
        else f"test accuracy {decision.challenger_accuracy:.4f} is not below the floor {promotion.accuracy_floor:.4f}"
    )
    default_reason = f"rollback from v{champion.version}"
    return _move(
        tracker, str(target.version), champion, gates, decision.refused_by is not None,
        reason or default_reason, VIA_ROLLBACK, "rollback",
    )


@dataclass(frozen=True)
class ChampionInfo:
    """What ``seqflow champion`` shows."""

    registered_model_name: str
    version: str
    run_id: str
    architecture: str
    dataset_digest: str
    test_metrics: dict[str, float]
    audit: dict[str, str]
    history: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def render(self) -> str:
        metrics = "  ".join(f"{key.removeprefix('test_')} {value:.4f}" for key, value in sorted(self.test_metrics.items()))
        lines = [
            f"champion:      {self.registered_model_name}@{CHAMPION_ALIAS} = v{self.version}",
            f"architecture:  {self.architecture}",
            f"run:           {self.run_id}",
            f"data:          {self.dataset_digest}",
            f"test metrics:  {metrics or '-'}",
            f"promoted by:   {self.audit.get('promoted_by', '-')} via {self.audit.get('promoted_via', '-')}",
            f"promoted at:   {self.audit.get('promoted_at', '-')}",
            f"why:           {self.audit.get('promotion_reason', '-')}",
            f"previous:      {('v' + self.audit['previous_champion']) if self.audit.get('previous_champion') else '-'}",
            f"history:       {len(self.history)} recorded move(s) of the alias",
        ]
        return "\n".join(lines)


# Test metrics shown for the champion (counts of the confusion matrix are left to the MLflow UI).
SHOWN_TEST_METRICS = ("test_accuracy", "test_roc_auc", "test_f1", "test_loss")


def describe_champion(tracker: Tracker) -> ChampionInfo:
    """The current champion, its test metrics from its run, and its audit tags."""
    name = tracker.settings.registered_model_name
    champion = tracker.champion()
    if champion is None:
        raise SeqflowError(
            f"registered model {name!r} has no {CHAMPION_ALIAS!r} alias in {tracker.settings.tracking_uri}; "
            "run `seqflow run` first"
        )
    tags = champion.tags or {}
    _, metrics = tracker.run_data(champion.run_id)
    return ChampionInfo(
        registered_model_name=name,
        version=str(champion.version),
        run_id=champion.run_id,
        architecture=tags.get("architecture", "?"),
        dataset_digest=tags.get("dataset_digest", "?"),
        test_metrics={key: metrics[key] for key in SHOWN_TEST_METRICS if key in metrics},
        audit={key: tags[key] for key in (*AUDIT_KEYS, "promotion_gates", "promotion_forced") if key in tags},
        history=tracker.champion_history(),
    )
