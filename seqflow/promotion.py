"""Whether a challenger replaces the champion: pure decision logic, no MLflow calls."""

from __future__ import annotations

from dataclasses import dataclass

from seqflow.config import PromotionConfig

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


def decide_promotion(
    challenger_version: str,
    challenger_accuracy: float,
    champion_version: str | None,
    champion_accuracy: float | None,
    promotion: PromotionConfig,
) -> PromotionDecision:
    """Promote only above the accuracy floor and, if there is a champion, by at least the margin.

    ``champion_accuracy`` must be measured on the same test data as ``challenger_accuracy``.
    """

    def decision(promote: bool, reason: str, refused_by: str | None = None) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, challenger_version, challenger_accuracy, champion_version, champion_accuracy, refused_by
        )

    if not challenger_accuracy >= promotion.accuracy_floor:
        return decision(
            False,
            f"test accuracy {challenger_accuracy:.4f} is below the floor {promotion.accuracy_floor:.4f}",
            FLOOR_GATE,
        )
    if champion_version is None or champion_accuracy is None:
        return decision(True, f"first champion: test accuracy {challenger_accuracy:.4f}")
    if challenger_accuracy > champion_accuracy + promotion.min_improvement:
        return decision(
            True,
            f"test accuracy {challenger_accuracy:.4f} beats champion v{champion_version} "
            f"({champion_accuracy:.4f}) by more than {promotion.min_improvement:.4f}",
        )
    return decision(
        False,
        f"test accuracy {challenger_accuracy:.4f} does not beat champion v{champion_version} "
        f"({champion_accuracy:.4f}) by more than {promotion.min_improvement:.4f} on the same test data",
        IMPROVEMENT_GATE,
    )
