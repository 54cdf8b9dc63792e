"""The significance gate of a promotion: challenger and champion measured now on the same rows (the pipeline's
:class:`seqflow.core.pipeline.Paired`), the paired test of :mod:`seqflow.core.paired` on them, and, with
``promotion.require_significant``, a win within noise refused.

The statistics are recorded whatever the setting, as ``promotion.*`` tags (see :data:`STATISTICS_KEYS`) on the
version the decision is about (and the execution's parent run), and summed up in the decision's reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable

from seqflow.core.errors import SeqflowError
from seqflow.core.paired import compare_outcomes
from seqflow.core.pipeline import Pipeline
from seqflow.core.promotion import PromotionDecision
from seqflow.core.tracking import Tracker

logger = logging.getLogger(__name__)

# The gate's setting, named in its refusals (``--set promotion.require_significant=false``).
SIGNIFICANCE_GATE = "require_significant"
# Defaults for a promotion section without the settings (a pipeline of its own, an older config).
DEFAULT_LEVEL = 0.05

# The tags one paired test writes (``promotion.discordant`` only for McNemar; on a test that could not run, only
# test="unavailable", unavailable_reason, required and champion_version):
STATISTICS_KEYS = (
    "promotion.test",  # mcnemar_midp | paired_bootstrap | unavailable
    "promotion.metric",  # what the difference is of, e.g. "test accuracy"
    "promotion.champion_version",  # the champion it was compared with
    "promotion.paired_rows",  # test rows, or validation blocks (windows), both models were measured on
    "promotion.difference",  # challenger minus champion, in the metric's units
    "promotion.ci_low", "promotion.ci_high", "promotion.confidence",  # paired bootstrap percentile interval
    "promotion.p_value",  # McNemar mid-p, or the two-sided bootstrap p-value
    "promotion.discordant",  # "b/c": rows only the challenger / only the champion got right
    "promotion.significant",  # true: favours the challenger with p below the level
    "promotion.required",  # promotion.require_significant when it was decided
    "promotion.seed",  # the bootstrap's seed (the challenger run's seed)
    "promotion.unavailable_reason",
)


def _seed_of(tracker: Tracker, version) -> int:  # noqa: ANN001 - mlflow ModelVersion
    """The run's one seed (its ``seed`` param), so the bootstrap of a decision is reproduced exactly."""
    params, _ = tracker.run_data(version.run_id)
    try:
        return int(params.get("seed", 0))
    except ValueError:
        return 0


def paired_check(
    pipeline: Pipeline, tracker: Tracker, promotion: Any, decision: PromotionDecision, challenger, champion,  # noqa: ANN001
    scoring_data: Callable[[], Any], forcing: bool = False,
) -> PromotionDecision:
    """``decision`` with the paired statistics of ``challenger`` against ``champion`` (registered versions)
    on ``scoring_data()``, and refused by the significance gate when ``promotion.require_significant`` and the
    win is within noise. Only measured when it can matter: a champion exists and the other gates passed (or a
    person forces the move, to record what the force overrode)."""
    paired = pipeline.paired
    if champion is None or paired is None or not (decision.promote or forcing):
        return decision
    required = bool(getattr(promotion, SIGNIFICANCE_GATE, False))
    level = float(getattr(promotion, "significance_level", DEFAULT_LEVEL))
    recorded = {"promotion.required": str(required).lower(), "promotion.champion_version": str(champion.version)}
    seed = _seed_of(tracker, challenger)
    started = time.monotonic()
    try:
        data = scoring_data()
        comparison = compare_outcomes(
            paired.outcomes(tracker, challenger, data), paired.outcomes(tracker, champion, data),
            level=level, seed=seed, metric=paired.metric,
        )
    except Exception as error:  # noqa: BLE001 - a test that cannot run is recorded (and refuses only if required)
        if not isinstance(error, (SeqflowError, ValueError)):
            error = f"{type(error).__name__}: {error}"
        logger.warning("paired test of v%s against v%s not run: %s", challenger.version, champion.version, error)
        statistics = recorded | {"promotion.test": "unavailable", "promotion.unavailable_reason": str(error)[:500]}
        if not required or not decision.promote:
            return replace(decision, reason=f"{decision.reason}; paired test not run: {error}", statistics=statistics)
        return replace(
            decision, promote=False, refused_by=SIGNIFICANCE_GATE, statistics=statistics,
            reason=f"{decision.reason}, but whether that is more than noise could not be tested: {error}; "
            f"{_what_to_do(pipeline, challenger)}",
        )
    statistics = recorded | comparison.as_tags() | {"promotion.seed": str(seed)}
    logger.info("paired test of v%s against v%s in %.1f s: %s", challenger.version, champion.version,
                time.monotonic() - started, comparison.describe())
    if decision.promote and required and not comparison.significant:
        return replace(
            decision, promote=False, refused_by=SIGNIFICANCE_GATE, statistics=statistics,
            reason=f"{decision.reason}, but not beyond noise: {comparison.describe()}, not significant at level "
            f"{level:g}; {_what_to_do(pipeline, challenger)}",
        )
    return replace(decision, reason=f"{decision.reason}; {comparison.describe()}", statistics=statistics)


def _what_to_do(pipeline: Pipeline, challenger) -> str:  # noqa: ANN001
    return (
        f"--set promotion.{SIGNIFICANCE_GATE}=false accepts a win within noise, or `{pipeline.via_promote} "
        f"{challenger.version} --force --reason TEXT` promotes it on the record"
    )
