"""Whether a challenger replaces the champion: pure decision logic, no MLflow calls."""

from __future__ import annotations

from dataclasses import dataclass, field

# The gates, named as their settings so a refusal says which one to change (``--set promotion.<gate>=...``).
FLOOR_GATE = "accuracy_floor"
IMPROVEMENT_GATE = "min_improvement"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_version: str
    challenger_accuracy: float
    champion_version: str | None = None
    champion_accuracy: float | None = None
    # The gate that refused the challenger; None when it was promoted.
    refused_by: str | None = None
    # The paired test against the champion as ``promotion.*`` tags (seqflow.core.significance); empty when none ran.
    statistics: dict[str, str] = field(default_factory=dict)


def decide_by_metric(
    challenger_version: str,
    challenger_score: float,
    champion_version: str | None,
    champion_score: float | None,
    *,
    metric: str,
    higher_is_better: bool,
    bound: float,
    min_improvement: float,
    data: str,
    bound_gate: str = FLOOR_GATE,
) -> PromotionDecision:
    """The promotion gates for any metric: ``bound`` is a floor when higher is better (accuracy) and a ceiling
    when lower is better (perplexity); a champion must be beaten by more than ``min_improvement``. Both
    scores must come from the same ``data``. The decision's ``*_accuracy`` fields hold the scores; its
    ``refused_by`` names the setting of the gate that refused (``bound_gate`` for the floor or ceiling)."""

    def decision(promote: bool, reason: str, refused_by: str | None = None) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, challenger_version, challenger_score, champion_version, champion_score, refused_by
        )

    sign = 1.0 if higher_is_better else -1.0
    if not sign * challenger_score >= sign * bound:
        side = "below the floor" if higher_is_better else "above the ceiling"
        return decision(False, f"{metric} {challenger_score:.4f} is {side} {bound:.4f}", bound_gate)
    if champion_version is None or champion_score is None:
        return decision(True, f"first champion: {metric} {challenger_score:.4f}")
    if sign * challenger_score > sign * champion_score + min_improvement:
        return decision(
            True,
            f"{metric} {challenger_score:.4f} beats champion v{champion_version} "
            f"({champion_score:.4f}) by more than {min_improvement:.4f}",
        )
    return decision(
        False,
        f"{metric} {challenger_score:.4f} does not beat champion v{champion_version} "
        f"({champion_score:.4f}) by more than {min_improvement:.4f} on the same {data}",
        IMPROVEMENT_GATE,
    )
