"""The paired statistics of a promotion (seqflow.core.paired) against known values: McNemar's exact test as
scipy's binomial test, its mid-p by hand, and the paired bootstrap's interval against the normal approximation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from seqflow.core.paired import (
    BOOTSTRAP,
    MCNEMAR,
    RowOutcomes,
    bootstrap_differences,
    bootstrap_p_value,
    compare_block_losses,
    compare_correctness,
    compare_outcomes,
    mcnemar_p_values,
)


@pytest.mark.parametrize("b, c", [(10, 2), (2, 10), (7, 3), (30, 12), (1, 0), (0, 5), (25, 25), (100, 70), (3000, 2900)])
def test_mcnemar_exact_is_the_two_sided_binomial_test_of_the_discordant_rows(b, c):
    exact, mid = mcnemar_p_values(b, c)
    assert exact == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)
    assert mid <= exact


def test_mcnemar_mid_p_by_hand():
    # 12 discordant rows, 10 for the challenger: P(X <= 2) = (1 + 12 + 66) / 4096, P(X = 2) = 66 / 4096.
    exact, mid = mcnemar_p_values(10, 2)
    assert exact == pytest.approx(2 * 79 / 4096) and mid == pytest.approx((2 * 79 - 66) / 4096)
    # A tie and no discordant rows at all are no evidence either way.
    assert mcnemar_p_values(4, 4) == pytest.approx((1.0, 1.0)) and mcnemar_p_values(0, 0) == (1.0, 1.0)
    with pytest.raises(ValueError):
        mcnemar_p_values(-1, 3)


def _correctness(both: int, challenger_only: int, champion_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    challenger = np.array([1] * both + [1] * challenger_only + [0] * champion_only + [0] * neither)
    champion = np.array([1] * both + [0] * challenger_only + [1] * champion_only + [0] * neither)
    return challenger, champion


def test_a_win_within_noise_is_not_significant_and_its_interval_straddles_zero():
    # 1,200 rows, accuracy 0.8083 vs 0.8000: +10 rows, 25 vs 15 discordant.
    challenger, champion = _correctness(945, 25, 15, 215)
    comparison = compare_correctness(challenger, champion, level=0.05, seed=7)
    assert comparison.test == MCNEMAR and comparison.rows == 1200 and comparison.discordant == (25, 15)
    assert comparison.difference == pytest.approx(10 / 1200)
    assert comparison.p_value == pytest.approx(mcnemar_p_values(25, 15)[1]) and comparison.p_value > 0.05
    assert comparison.ci_low < 0 < comparison.ci_high and not comparison.significant
    assert "+0.0083" in comparison.describe() and "95% CI" in comparison.describe()


def test_a_clear_win_is_significant_and_a_clear_loss_is_not():
    challenger, champion = _correctness(900, 60, 10, 230)
    win = compare_correctness(challenger, champion, level=0.05, seed=7)
    assert win.significant and win.p_value < 1e-6 and 0 < win.ci_low < win.difference < win.ci_high
    loss = compare_correctness(champion, challenger, level=0.05, seed=7)
    assert not loss.significant and loss.p_value == win.p_value and loss.ci_high < 0


def test_the_bootstrap_interval_matches_the_normal_approximation_and_is_seeded():
    # Differences +1 (60 rows), -1 (40), 0 (100): mean 0.1, sd 0.7, so the 95% interval is 0.1 +- 1.96 * 0.7 / sqrt(200).
    challenger, champion = _correctness(50, 60, 40, 50)
    comparison = compare_correctness(challenger, champion, level=0.05, seed=3)
    half = 1.96 * 0.7 / np.sqrt(200)
    assert comparison.ci_low == pytest.approx(0.1 - half, abs=0.012)
    assert comparison.ci_high == pytest.approx(0.1 + half, abs=0.012)
    again = compare_correctness(challenger, champion, level=0.05, seed=3)
    assert again == comparison
    assert compare_correctness(challenger, champion, level=0.05, seed=4).ci_low != comparison.ci_low


def test_the_block_bootstrap_weighs_blocks_by_their_characters():
    rng = np.random.default_rng(0)
    counts = np.array([500] * 40 + [120] * 8)
    champion = counts * rng.uniform(1.4, 1.8, len(counts))
    # Better by 0.05 nats/char in every block: significant, lower is better.
    better = compare_block_losses(champion - 0.05 * counts, champion, counts, level=0.05, seed=1)
    assert better.test == BOOTSTRAP and better.rows == 48 and better.discordant is None
    assert better.difference == pytest.approx(-0.05) and better.significant
    assert better.ci_low == pytest.approx(-0.05) and better.ci_high == pytest.approx(-0.05)
    # Noise around the champion's losses with no shift: no significant difference.
    noisy = champion + counts * rng.normal(0, 0.05, len(counts))
    within = compare_block_losses(noisy, champion, counts, level=0.05, seed=1)
    assert within.ci_low < 0 < within.ci_high and not within.significant and within.p_value > 0.05
    # The difference of mean loss is (sum of sums) / (sum of counts), not the mean of per-block means.
    assert within.difference == pytest.approx((noisy.sum() - champion.sum()) / counts.sum())
    assert within.as_tags()["promotion.test"] == "paired_bootstrap" and "promotion.discordant" not in within.as_tags()


def test_bootstrap_p_value_and_refused_inputs():
    assert bootstrap_p_value(np.array([0.1] * 99)) == pytest.approx(2 / 100)
    assert bootstrap_p_value(np.array([-1.0, 1.0] * 50)) == 1.0
    with pytest.raises(ValueError, match="same rows"):
        compare_outcomes(RowOutcomes(np.ones(3)), RowOutcomes(np.ones(4)), level=0.05, seed=0, metric="m")
    with pytest.raises(ValueError, match="different characters"):
        compare_outcomes(RowOutcomes(np.ones(2), np.array([1, 2])), RowOutcomes(np.ones(2), np.array([2, 1])),
                         level=0.05, seed=0, metric="m")
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_differences(np.array([]), np.array([]), None, 0)


def test_statistics_tags_are_machine_readable():
    challenger, champion = _correctness(900, 60, 10, 230)
    tags = compare_correctness(challenger, champion, level=0.01, seed=7, metric="test accuracy").as_tags()
    assert tags["promotion.test"] == "mcnemar_midp" and tags["promotion.metric"] == "test accuracy"
    assert tags["promotion.discordant"] == "60/10" and tags["promotion.paired_rows"] == "1200"
    assert float(tags["promotion.difference"]) == pytest.approx(50 / 1200, abs=1e-6)
    assert float(tags["promotion.confidence"]) == 0.99 and tags["promotion.significant"] == "true"
    assert float(tags["promotion.ci_low"]) < float(tags["promotion.ci_high"]) and float(tags["promotion.p_value"]) < 0.01
