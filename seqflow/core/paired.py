"""Paired statistics for a promotion: is a challenger's win over the champion, measured on the same rows, more
than noise? Pure functions of per-row outcomes, no MLflow and no pipeline.

* Accuracy (one correct/incorrect outcome per test row): McNemar's test on the discordant rows, as the exact
  binomial test and its mid-p (Fagerland, Lydersen & Laake 2013, recommended over the asymptotic chi-square and
  less conservative than the exact test), with a paired bootstrap interval of the accuracy difference.
* Mean loss over blocks (one loss sum and character count per validation window of the character models): a
  paired bootstrap over blocks of the difference of mean loss, with its percentile interval and a two-sided
  bootstrap p-value.

Differences are always challenger minus champion in the metric's own units; which sign is a win is the
caller's (``higher_is_better``). Every bootstrap is seeded, so a decision is reproduced exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Resamples per bootstrap: the 2.5% and 97.5% quantiles of 2,000 resamples move by about 0.1 of an interval width.
BOOTSTRAP_RESAMPLES = 2000
# Resamples drawn at once (bounds memory: this many times the number of rows of int64 indices).
_CHUNK = 100

# Names of the tests, as recorded in the ``promotion.test`` tag.
MCNEMAR = "mcnemar_midp"
BOOTSTRAP = "paired_bootstrap"


def mcnemar_p_values(challenger_only: int, champion_only: int) -> tuple[float, float]:
    """(exact, mid-p) two-sided p-values of McNemar's test: ``challenger_only`` rows only the challenger got
    right, ``champion_only`` rows only the champion got right. Under no difference each discordant row is a fair
    coin, so the exact p is the two-sided binomial test of min(b, c) in b + c draws of p = 1/2; the mid-p counts
    the observed outcome's own probability once instead of twice."""
    if challenger_only < 0 or champion_only < 0:
        raise ValueError(f"discordant counts must be non-negative, got {challenger_only} and {champion_only}")
    discordant = challenger_only + champion_only
    if discordant == 0:
        return 1.0, 1.0
    low = min(challenger_only, champion_only)
    # P(X <= low) and P(X = low) for X ~ Binomial(n, 1/2), term by term in log space (no scipy import in the
    # gate, no overflow for thousands of discordant rows).
    def probability(i: int) -> float:
        log_comb = math.lgamma(discordant + 1) - math.lgamma(i + 1) - math.lgamma(discordant - i + 1)
        return math.exp(log_comb - discordant * math.log(2.0))

    tail = 2.0 * math.fsum(probability(i) for i in range(low + 1))
    return min(1.0, tail), min(1.0, tail - probability(low))


def bootstrap_differences(
    challenger: np.ndarray, champion: np.ndarray, counts: np.ndarray | None, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> np.ndarray:
    """``resamples`` bootstrap replicates of (challenger − champion) mean, resampling the paired rows together.
    With ``counts``, each row is a block (its values are sums over ``counts`` items) and the mean is
    sum(values) / sum(counts) of the resampled blocks; without, the plain mean of the rows."""
    challenger, champion = np.asarray(challenger, np.float64), np.asarray(champion, np.float64)
    if challenger.shape != champion.shape or challenger.ndim != 1 or len(challenger) == 0:
        raise ValueError(f"paired outcomes must be two non-empty 1-d arrays of one length, got {challenger.shape} "
                         f"and {champion.shape}")
    weights = np.ones_like(challenger) if counts is None else np.asarray(counts, np.float64)
    if weights.shape != challenger.shape or not np.all(weights > 0):
        raise ValueError("block counts must be positive, one per paired row")
    difference = challenger - champion
    rng = np.random.default_rng(seed)
    rows = len(difference)
    replicates = []
    for start in range(0, resamples, _CHUNK):
        picked = rng.integers(0, rows, size=(min(_CHUNK, resamples - start), rows))
        replicates.append(difference[picked].sum(axis=1) / weights[picked].sum(axis=1))
    return np.concatenate(replicates)


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile bootstrap interval of ``confidence`` (e.g. 0.95) from the replicates."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": twice the share of replicates on the far side of zero
    from most of them (with the observed sample counted once, so it is never 0)."""
    below = int(np.sum(replicates <= 0.0))
    above = int(np.sum(replicates >= 0.0))
    return min(1.0, 2.0 * (min(below, above) + 1) / (len(replicates) + 1))


@dataclass(frozen=True)
class PairedComparison:
    """A challenger against the champion on the same rows: the difference (challenger − champion, in
    ``metric``'s units), its interval, the test's p-value, and whether the challenger is significantly better."""

    test: str
    metric: str
    rows: int
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    # True when the difference favours the challenger and p_value < 1 - confidence.
    significant: bool
    # McNemar's discordant counts (rows only the challenger / only the champion got right); None for a bootstrap.
    discordant: tuple[int, int] | None = None

    def describe(self) -> str:
        """One phrase: the difference, its interval and the test, e.g. for a decision's reason."""
        counts = f", {self.discordant[0]} vs {self.discordant[1]} discordant" if self.discordant else ""
        unit = "rows" if self.test == MCNEMAR else "windows"
        return (
            f"{self.metric} difference {self.difference:+.4f} ({self.confidence:.0%} CI {self.ci_low:+.4f} to "
            f"{self.ci_high:+.4f}, {self.test} p={self.p_value:.3g}{counts}, {self.rows} paired {unit})"
        )

    def as_tags(self) -> dict[str, str]:
        """The statistics as ``promotion.*`` tags (strings; numbers with enough digits to recompute nothing)."""
        tags = {
            "promotion.test": self.test,
            "promotion.metric": self.metric,
            "promotion.paired_rows": str(self.rows),
            "promotion.difference": f"{self.difference:.6f}",
            "promotion.ci_low": f"{self.ci_low:.6f}",
            "promotion.ci_high": f"{self.ci_high:.6f}",
            "promotion.confidence": f"{self.confidence:g}",
            "promotion.p_value": f"{self.p_value:.6g}",
            "promotion.significant": str(self.significant).lower(),
        }
        if self.discordant is not None:
            tags["promotion.discordant"] = f"{self.discordant[0]}/{self.discordant[1]}"
        return tags


@dataclass(frozen=True)
class RowOutcomes:
    """One model's outcomes on the rows of a paired comparison, as a pipeline measures them."""

    # Per row: 1 if the model got it right, else 0 (``counts`` None); or per block: the sum of its losses.
    values: np.ndarray
    # Per block: how many items (characters) its loss sums over; None for per-row correctness.
    counts: np.ndarray | None = None


def compare_outcomes(
    challenger: RowOutcomes, champion: RowOutcomes, *, level: float, seed: int, metric: str
) -> PairedComparison:
    """The paired test that fits the outcomes: McNemar for correctness, the block bootstrap for losses."""
    if len(challenger.values) != len(champion.values) or (challenger.counts is None) != (champion.counts is None):
        raise ValueError(f"the two models were not measured on the same rows ({len(challenger.values)} and "
                         f"{len(champion.values)} outcomes)")
    if challenger.counts is None:
        return compare_correctness(challenger.values, champion.values, level=level, seed=seed, metric=metric)
    if not np.array_equal(challenger.counts, champion.counts):
        raise ValueError("the two models' loss blocks cover different characters")
    return compare_block_losses(challenger.values, champion.values, challenger.counts, level=level, seed=seed, metric=metric)


def _significant(difference: float, p_value: float, level: float, higher_is_better: bool) -> bool:
    favours = difference > 0 if higher_is_better else difference < 0
    return bool(favours and p_value < level)


def compare_correctness(
    challenger: np.ndarray, champion: np.ndarray, *, level: float, seed: int, metric: str = "accuracy",
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedComparison:
    """Per-row correctness (bool or 0/1) of both models on the same rows: McNemar's mid-p decides, the
    bootstrap gives the interval of the accuracy difference at confidence 1 − ``level``."""
    challenger, champion = np.asarray(challenger).astype(bool), np.asarray(champion).astype(bool)
    replicates = bootstrap_differences(challenger, champion, None, seed, resamples)
    challenger_only, champion_only = int(np.sum(challenger & ~champion)), int(np.sum(champion & ~challenger))
    _, mid_p = mcnemar_p_values(challenger_only, champion_only)
    difference = (challenger_only - champion_only) / len(challenger)
    low, high = percentile_interval(replicates, 1.0 - level)
    return PairedComparison(
        MCNEMAR, metric, len(challenger), difference, low, high, 1.0 - level, mid_p,
        _significant(difference, mid_p, level, True), (challenger_only, champion_only),
    )


def compare_block_losses(
    challenger: np.ndarray, champion: np.ndarray, counts: np.ndarray, *, level: float, seed: int,
    metric: str = "loss", resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedComparison:
    """Per-block loss sums of both models over the same blocks of ``counts`` items each (lower is better): the
    paired bootstrap over blocks decides and gives the interval of the mean-loss difference."""
    replicates = bootstrap_differences(challenger, champion, counts, seed, resamples)
    total = float(np.sum(counts))
    difference = (float(np.sum(challenger)) - float(np.sum(champion))) / total
    low, high = percentile_interval(replicates, 1.0 - level)
    p_value = bootstrap_p_value(replicates)
    return PairedComparison(
        BOOTSTRAP, metric, len(counts), difference, low, high, 1.0 - level, p_value,
        _significant(difference, p_value, level, False),
    )
