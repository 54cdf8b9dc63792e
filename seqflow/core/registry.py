"""Registration and the champion alias for any pipeline (:class:`seqflow.core.pipeline.Pipeline`).

An execution registers every evaluated model all or none and moves ``champion`` to the best one only through
the pipeline's promotion gates, comparing with the champion re-scored on the same data when it was measured on
other data. ``promote`` and ``rollback`` move the alias by hand with the same gates. Every move tags the new
champion with who, when, why and through what, and is appended to the registered model's champion history,
which rollback goes back along; moves are all or nothing (:meth:`ModelRegistry.set_champion`).
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from seqflow.core.cards import publish_cards
from seqflow.core.errors import ExitCode, SeqflowError
from seqflow.core.model_registry import CHAMPION_ALIAS, RegisteredVersion
from seqflow.core.pipeline import Pipeline
from seqflow.core.promotion import PromotionDecision, decide_by_metric
from seqflow.core.significance import paired_check
from seqflow.core.tracking import Tracker

logger = logging.getLogger(__name__)

# Version tags written on every move of the alias (``promotion_reason`` is the person's or the gates' words).
AUDIT_KEYS = ("promoted_by", "promoted_at", "promoted_via", "promotion_reason", "previous_champion")


class PromotionRefused(SeqflowError):
    """A gate refused to move the champion alias; ``--force --reason`` overrides it."""

    exit_code = ExitCode.GATE_REFUSED


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


@dataclass(frozen=True)
class Candidate:
    """An evaluated model to register: its run, its logged model and the tags it is chosen by."""

    architecture: str
    run_id: str
    model_uri: str
    dataset_digest: str
    # The pipeline's metrics as version tags, its score tag among them.
    metric_tags: dict[str, str]

    @classmethod
    def of(cls, evaluated: Any, metric_tags: dict[str, str]) -> Candidate:
        """The candidate for a pipeline's evaluated record (its architecture, run, model and dataset digest)."""
        return cls(evaluated.architecture, evaluated.run_id, evaluated.model_uri, evaluated.dataset_digest, metric_tags)


@dataclass(frozen=True)
class RegistrationOutcome:
    """What registration did; the same record for every pipeline."""

    versions: list[RegisteredVersion]
    decision: PromotionDecision | None
    champion_version: str | None

    @classmethod
    def now(cls, tracker: Tracker, versions: list[RegisteredVersion], decision: PromotionDecision | None) -> RegistrationOutcome:
        """The outcome with the champion as the registry has it now (moved by ``decision`` or not)."""
        champion = tracker.champion()
        return cls(versions=versions, decision=decision, champion_version=str(champion.version) if champion else None)

    def progress_note(self) -> str:
        """One line for the run's progress: the versions registered and the champion."""
        champion = f"champion v{self.champion_version}" if self.champion_version else "no champion"
        return f"{len(self.versions)} version(s) registered, {champion}"

    @property
    def decision_reason(self) -> str:
        return self.decision.reason if self.decision else "no model evaluated"

    def version_of(self, run_id: str) -> str | None:
        """The version registered from the model of ``run_id``, or None."""
        return next((version.version for version in self.versions if version.run_id == run_id), None)

    def is_champion(self, run_id: str) -> bool:
        version = self.version_of(run_id)
        return version is not None and version == self.champion_version


class IncomparableChampion(SeqflowError):
    """The champion cannot be scored on this execution's data (the message says why, e.g. its vocabulary cannot
    read the text): the challenger is not compared with it, and so not promoted, instead of a meaningless score."""


# The gate named when a champion could not be compared (see IncomparableChampion).
COMPARABLE_CHAMPION_GATE = "comparable_champion"


def champion_score_on(
    pipeline: Pipeline, tracker: Tracker, champion, dataset_digest: str, scoring_data: Callable[[], Any]  # noqa: ANN001
) -> float:
    """The champion's score on the data ``dataset_digest``: from its tags if it was measured on the same data,
    otherwise by scoring the champion's model now on what ``scoring_data`` returns (only called then)."""
    tags = champion.tags or {}
    if tags.get("dataset_digest") == dataset_digest and pipeline.score.tag in tags:
        return float(tags[pipeline.score.tag])
    logger.info("champion v%s was measured on other data; scoring it on this %s", champion.version, pipeline.score.data)
    return pipeline.score_champion(tracker, champion, scoring_data())


def decide(
    pipeline: Pipeline, promotion: Any, challenger_version: str, challenger_score: float,
    champion_version: str | None, champion_score: float | None,
) -> PromotionDecision:
    """The pipeline's gates (its ``promotion`` config section) for a challenger against the champion."""
    score = pipeline.score
    return decide_by_metric(
        challenger_version, challenger_score, champion_version, champion_score,
        metric=score.label, higher_is_better=score.higher_is_better, bound=score.bound(promotion),
        min_improvement=promotion.min_improvement, data=score.data, bound_gate=score.bound_setting,
    )


def apply_promotion(
    tracker: Tracker, decision: PromotionDecision, parent_run_id: str, via: str, previous_champion: str | None
) -> None:
    """Move ``champion`` to the challenger with an audit trail, or tag why not; record the reason on the run."""
    if decision.promote:
        # The statistics on the version only: the history keeps the reason, which sums them up, so it stays short.
        audit = audit_tags(decision.reason, via, previous_champion)
        tracker.set_champion(decision.challenger_version, audit, details=decision.statistics)
    else:
        tracker.tag_version(decision.challenger_version, {"not_promoted_reason": decision.reason} | decision.statistics)
    tracker.set_tags(parent_run_id, {"promotion": decision.reason} | decision.statistics)


def best_version(pipeline: Pipeline, versions: Sequence[RegisteredVersion]) -> RegisteredVersion:
    """The version with the best score (a missing or NaN score is the worst)."""
    sign = 1.0 if pipeline.score.higher_is_better else -1.0
    return max(versions, key=lambda version: -math.inf if math.isnan(version.score) else sign * version.score)


def register_and_promote(
    pipeline: Pipeline,
    tracker: Tracker,
    candidates: Sequence[Candidate],
    promotion: Any,
    parent_run_id: str,
    scoring_data: Callable[[], Any],
    challenger_gate: Callable[[RegisteredVersion], PromotionDecision | None] | None = None,
) -> RegistrationOutcome:
    """Register every candidate, then move ``champion`` to the best one if it passes the gates; the champion
    is compared on this execution's data (``scoring_data``: see :func:`champion_score_on`). A pipeline's own
    ``challenger_gate`` (e.g. "beat a count baseline") is checked first: a refusal from it is the decision.
    A champion that cannot be compared (:class:`IncomparableChampion`) is not: the challenger is not promoted.

    All or nothing: if anything fails or the process is interrupted here, this execution's versions are deleted
    again and the alias stays on (or goes back to) the previous champion. A process killed outright leaves them
    to the next execution's :func:`seqflow.core.runs.close_runs_of_dead_executions`.
    """
    registered = [
        (
            candidate.architecture,
            candidate.run_id,
            candidate.model_uri,
            {
                "architecture": candidate.architecture,
                "run_id": candidate.run_id,
                "parent_run_id": parent_run_id,
                "dataset_digest": candidate.dataset_digest,
                **candidate.metric_tags,
            },
        )
        for candidate in candidates
    ]
    versions = tracker.register_versions(registered, score_tag=pipeline.score.tag)
    previous_champion: str | None = None
    try:
        best = best_version(pipeline, versions)
        champion = tracker.champion()
        previous_champion = str(champion.version) if champion is not None else None
        decision = challenger_gate(best) if challenger_gate is not None else None
        if decision is None:
            decision = _decide_against_champion(pipeline, tracker, promotion, candidates, best, champion, scoring_data)
        apply_promotion(tracker, decision, parent_run_id, pipeline.via_run, previous_champion)
        publish_cards(pipeline, tracker, [version.version for version in versions])
    except BaseException:
        # Also when interrupted after the alias moved: the alias goes back to the version it was on.
        tracker.withdraw_versions([version.version for version in versions], previous_champion)
        raise
    return RegistrationOutcome.now(tracker, versions, decision)


def _decide_against_champion(
    pipeline: Pipeline, tracker: Tracker, promotion: Any, candidates: Sequence[Candidate], best: RegisteredVersion,
    champion, scoring_data: Callable[[], Any],  # noqa: ANN001 - mlflow ModelVersion or None
) -> PromotionDecision:
    champion_version = str(champion.version) if champion is not None else None
    champion_score = None
    if champion is not None:
        digest = next(candidate.dataset_digest for candidate in candidates if candidate.run_id == best.run_id)
        try:
            champion_score = champion_score_on(pipeline, tracker, champion, digest, scoring_data)
        except IncomparableChampion as incomparable:
            return PromotionDecision(
                False, f"not compared with champion v{champion_version} of {tracker.settings.registered_model_name!r}: "
                f"{incomparable}", best.version, best.score, champion_version, None, COMPARABLE_CHAMPION_GATE,
            )
    decision = decide(pipeline, promotion, best.version, best.score, champion_version, champion_score)
    return paired_check(pipeline, tracker, promotion, decision, tracker.model_version(best.version), champion, scoring_data)


# --- the alias by hand: promote, rollback, champion ----------------------------------------------------------


def _recorded_score(pipeline: Pipeline, version) -> float:  # noqa: ANN001 - mlflow ModelVersion
    recorded = (version.tags or {}).get(pipeline.score.tag)
    if recorded is None:
        raise SeqflowError(
            f"version {version.version} has no {pipeline.score.tag} tag (not registered by `{pipeline.via_run}`), so "
            "the gates cannot be checked; use --force --reason TEXT to promote it anyway"
        )
    return float(recorded)


def _gates_for(pipeline: Pipeline, tracker: Tracker, version, champion, promotion: Any, force: bool) -> PromotionDecision:  # noqa: ANN001
    """The pipeline's decision for ``version`` against ``champion``, both measured on ``version``'s data (with
    the paired test when the other gates pass or ``force`` overrides them)."""
    score = _recorded_score(pipeline, version)
    champion_score = None
    data = lambda: pipeline.scoring_data_of(tracker, version)  # noqa: E731
    if champion is not None:
        champion_score = champion_score_on(pipeline, tracker, champion, (version.tags or {}).get("dataset_digest", ""), data)
    decision = decide(
        pipeline, promotion, str(version.version), score,
        str(champion.version) if champion is not None else None, champion_score,
    )
    return paired_check(pipeline, tracker, promotion, decision, version, champion, data, forcing=force)


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
    pipeline: Pipeline, tracker: Tracker, version: str, champion, decision_text: str, forced: bool, reason: str | None,
    via: str, action: str, statistics: dict[str, str] | None = None,
) -> AliasMove:  # noqa: ANN001
    previous = str(champion.version) if champion is not None else None
    audit = audit_tags(reason or decision_text, via, previous) | {
        "promotion_gates": decision_text,
        "promotion_forced": str(forced).lower(),
    }
    tracker.set_champion(version, audit, action=action, details=statistics)
    try:  # the cards of the versions the alias left and reached, and the history on the registered model
        publish_cards(pipeline, tracker, [version, *([previous] if previous and tracker.version_exists(previous) else [])])
    except Exception as exc:  # noqa: BLE001 - the move is done and audited; a stale card is not worth undoing it
        logger.warning("moved %s, but could not update the model cards: %s", CHAMPION_ALIAS, exc)
    return AliasMove(tracker.settings.registered_model_name, version, previous, decision_text, forced, audit)


def _no_champion(pipeline: Pipeline, tracker: Tracker) -> SeqflowError:
    return SeqflowError(
        f"registered model {tracker.settings.registered_model_name!r} has no {CHAMPION_ALIAS!r} alias in "
        f"{tracker.settings.tracking_uri}; run `{pipeline.via_run}` first"
    )


def promote_version(
    pipeline: Pipeline, tracker: Tracker, version: str, promotion: Any, reason: str | None = None, force: bool = False
) -> AliasMove:
    """Move ``champion`` to ``version`` if it passes the pipeline's gates (or ``force`` with a ``reason``)."""
    if force and not reason:
        raise SeqflowError("--force needs --reason TEXT: an overridden gate is recorded with why")
    target = tracker.model_version(version)
    champion = tracker.champion()
    if champion is not None and str(champion.version) == str(target.version):
        raise SeqflowError(f"version {target.version} is already {tracker.settings.registered_model_name}@{CHAMPION_ALIAS}")
    via = pipeline.via_promote
    try:
        decision = _gates_for(pipeline, tracker, target, champion, promotion, force)
    except SeqflowError as error:
        if not force:
            raise
        return _move(pipeline, tracker, str(target.version), champion, f"not checked: {error}", True, reason, via, "promote")
    if not decision.promote and not force:
        raise _refusal(decision, f"promoting v{target.version}")
    return _move(
        pipeline, tracker, str(target.version), champion, decision.reason, not decision.promote, reason, via, "promote",
        decision.statistics,
    )


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


def rollback(pipeline: Pipeline, tracker: Tracker, promotion: Any, reason: str | None = None, force: bool = False) -> AliasMove:
    """Move ``champion`` back to the champion before the current one.

    Gate: the floor or ceiling (the version was champion before; it need not beat the one it replaces, which
    was promoted for beating it). ``force`` with a ``reason`` overrides it.
    """
    if force and not reason:
        raise SeqflowError("--force needs --reason TEXT: an overridden gate is recorded with why")
    name = tracker.settings.registered_model_name
    champion = tracker.champion()
    if champion is None:
        raise _no_champion(pipeline, tracker)
    problem = tracker.history_problem()
    if problem:
        raise SeqflowError(f"cannot roll back: {problem}. Meanwhile `{pipeline.via_promote} VERSION` moves the alias")
    lineage = champion_lineage(tracker.champion_history())
    if not lineage or lineage[-1] != str(champion.version):
        raise SeqflowError(
            f"{name}@{CHAMPION_ALIAS} is v{champion.version}, but the champion history "
            f"{'ends at v' + lineage[-1] if lineage else 'is empty'}: the alias was moved outside seqflow, so there is "
            f"no recorded champion to roll back to; use `{pipeline.via_promote} VERSION`"
        )
    if len(lineage) < 2:
        raise SeqflowError(f"nothing to roll back to: v{champion.version} is the first recorded champion of {name!r}")
    target = tracker.model_version(lineage[-2])
    decision = decide(pipeline, promotion, str(target.version), _recorded_score(pipeline, target), None, None)
    if decision.refused_by is not None and not force:
        raise _refusal(decision, f"rolling back to v{target.version}")
    score = pipeline.score
    side = "not below the floor" if score.higher_is_better else "not above the ceiling"
    gates = decision.reason if decision.refused_by else (
        f"{score.label} {decision.challenger_accuracy:.4f} is {side} {score.bound(promotion):.4f}"
    )
    return _move(
        pipeline, tracker, str(target.version), champion, gates, decision.refused_by is not None,
        reason or f"rollback from v{champion.version}", pipeline.via_rollback, "rollback",
    )
