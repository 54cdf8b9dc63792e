"""The significance gate (seqflow.core.significance) through the registry, on a real SQLite registry with the toy
pipeline of tests/core/conftest.py (lower validation loss is better): its per-block outcomes are given per version,
so a win within noise and a clear win are built exactly. The real pipelines' outcomes are measured in
tests/flows/test_champion.py (McNemar on a sentiment test split) and tests/charlm/test_charlm_champion.py (the
bootstrap over validation windows)."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.core import registry
from seqflow.core.errors import SeqflowError
from seqflow.core.paired import RowOutcomes
from seqflow.core.registry import PromotionRefused
from seqflow.core.runs import ROLE_TAG
from seqflow.core.significance import SIGNIFICANCE_GATE
from seqflow.core.champion_info import describe_champion
from tests.core.conftest import ToyPromotion, ToyScorer, toy_candidate, toy_pipeline

BLOCKS = np.full(60, 400)
_RNG = np.random.default_rng(11)
# The champion's losses per block around 0.50 nats; a challenger 0.01 better on average but with noise of 0.1 per
# block (within noise), and one 0.05 better in every block (clearly better).
CHAMPION = RowOutcomes(BLOCKS * (0.50 + _RNG.normal(0, 0.02, 60)), BLOCKS)
_NOISE = _RNG.normal(0, 0.1, 60)
WITHIN_NOISE = RowOutcomes(CHAMPION.values + BLOCKS * (-0.01 + _NOISE - _NOISE.mean()), BLOCKS)
CLEARLY_BETTER = RowOutcomes(CHAMPION.values - BLOCKS * 0.05, BLOCKS)
STRICT = ToyPromotion(require_significant=True)


def _mean_loss(outcomes: RowOutcomes) -> float:
    return float(outcomes.values.sum() / outcomes.counts.sum())


def _execution(tracker, pipeline, loss: float, promotion):  # noqa: ANN001, ANN202
    parent = tracker.start_run("execution", {ROLE_TAG: pipeline.execution_role})
    outcome = registry.register_and_promote(
        pipeline, tracker, [toy_candidate(tracker, parent, "a", loss, "data-a")], promotion, parent, lambda: "data-a"
    )
    tracker.end_run(parent)
    return outcome


def _with_champion(tracker, challenger: RowOutcomes):  # noqa: ANN001, ANN202
    """The toy pipeline with v1 champion (its outcomes CHAMPION) and ``challenger``'s outcomes for v2 and v3."""
    pipeline = toy_pipeline(ToyScorer(), {"1": CHAMPION, "2": challenger, "3": challenger})
    _execution(tracker, pipeline, _mean_loss(CHAMPION), STRICT)
    return pipeline


def test_a_win_within_noise_is_refused_with_the_interval_and_promoted_without_the_setting(tracker):
    pipeline = _with_champion(tracker, WITHIN_NOISE)
    assert _mean_loss(WITHIN_NOISE) < _mean_loss(CHAMPION)  # it does win, by the aggregate
    outcome = _execution(tracker, pipeline, _mean_loss(WITHIN_NOISE), STRICT)
    decision = outcome.decision
    assert not decision.promote and decision.refused_by == SIGNIFICANCE_GATE and outcome.champion_version == "1"
    reason = decision.reason
    assert "beats champion v1" in reason and "but not beyond noise: validation loss difference -0.0" in reason
    assert "95% CI -0." in reason and " to +0." in reason and "paired_bootstrap p=" in reason and "60 paired windows" in reason
    assert "--set promotion.require_significant=false" in reason and "seqflow toy promote 2 --force --reason TEXT" in reason
    tags = tracker.model_version("2").tags
    assert tags["not_promoted_reason"] == reason
    assert tags["promotion.test"] == "paired_bootstrap" and tags["promotion.significant"] == "false"
    assert tags["promotion.required"] == "true" and tags["promotion.champion_version"] == "1"
    assert float(tags["promotion.ci_low"]) < 0 < float(tags["promotion.ci_high"]) and float(tags["promotion.p_value"]) >= 0.05
    assert float(tags["promotion.difference"]) == pytest.approx(_mean_loss(WITHIN_NOISE) - _mean_loss(CHAMPION), abs=1e-6)
    assert tags["promotion.seed"] == "0"  # the toy runs log no seed param

    # Without the setting (the default) the same win is promoted, as before, and its statistics recorded.
    outcome = _execution(tracker, pipeline, _mean_loss(WITHIN_NOISE), ToyPromotion())
    assert outcome.champion_version == "3" and outcome.decision.refused_by is None
    champion = tracker.champion()
    assert champion.tags["promotion.significant"] == "false" and champion.tags["promotion.required"] == "false"
    assert "95% CI" in champion.tags["promotion_reason"]
    # The history keeps the reason (which sums the test up), the version its statistics.
    assert "paired_bootstrap p=" in tracker.champion_history()[-1]["promotion_reason"]


def test_a_clear_win_passes_the_gate(tracker):
    pipeline = _with_champion(tracker, CLEARLY_BETTER)
    outcome = _execution(tracker, pipeline, _mean_loss(CLEARLY_BETTER), STRICT)
    assert outcome.champion_version == "2" and outcome.decision.promote
    tags = tracker.champion().tags
    assert tags["promotion.significant"] == "true" and float(tags["promotion.ci_high"]) < 0
    # `champion --json` shows them with the audit.
    assert describe_champion(pipeline, tracker).as_dict()["audit"]["promotion.significant"] == "true"
    assert float(tags["promotion.difference"]) == pytest.approx(-0.05, abs=1e-6)


def test_promote_by_hand_is_refused_within_noise_and_forced_on_the_record(tracker):
    pipeline = _with_champion(tracker, WITHIN_NOISE)
    # Its own execution leaves v2 unpromoted (a ceiling of 0 refuses it before any test).
    _execution(tracker, pipeline, _mean_loss(WITHIN_NOISE), ToyPromotion(max_val_loss=0.0))
    with pytest.raises(PromotionRefused) as refused:
        registry.promote_version(pipeline, tracker, "2", STRICT)
    message = str(refused.value)
    assert "promoting v2 refused by the promotion.require_significant gate" in message and "\n" not in message
    assert "95% CI" in message and "p=" in message and "--force --reason TEXT" in message
    assert str(tracker.champion().version) == "1"

    moved = registry.promote_version(pipeline, tracker, "2", STRICT, reason="ship the new tokeniser", force=True)
    assert moved.forced and str(tracker.champion().version) == "2"
    tags = tracker.champion().tags
    assert tags["promotion_forced"] == "true" and tags["promotion_reason"] == "ship the new tokeniser"
    assert "not beyond noise" in tags["promotion_gates"] and tags["promotion.significant"] == "false"
    assert tags["promoted_via"] == "seqflow toy promote" and "@" in tags["promoted_by"] and tags["promoted_at"]
    assert tracker.champion_history()[-1]["promotion_forced"] == "true"
    assert "not beyond noise" in tracker.champion_history()[-1]["promotion_gates"]


class _NotHere(dict):
    def __getitem__(self, version: str) -> RowOutcomes:
        raise SeqflowError(f"the test split of v{version} is not on this machine")


def test_a_test_that_cannot_run_refuses_only_when_required(tracker):
    pipeline = toy_pipeline(ToyScorer(), _NotHere())
    _execution(tracker, pipeline, 0.5, STRICT)
    refused = _execution(tracker, pipeline, 0.4, STRICT)
    assert refused.decision.refused_by == SIGNIFICANCE_GATE and "could not be tested" in refused.decision.reason
    promoted = _execution(tracker, pipeline, 0.3, ToyPromotion())
    assert promoted.champion_version == "3"
    tags = tracker.champion().tags
    assert tags["promotion.test"] == "unavailable" and "not on this machine" in tags["promotion.unavailable_reason"]
