"""Count-based character models the network must beat: a unigram and an interpolated Kneser-Ney n-gram.

Both are fitted on the training ids and scored on exactly the validation characters that
:func:`seqflow.charlm.train.stream_loss` scores: the validation ids cut into the same contiguous streams, every
character after a stream's first one predicted, its context reaching back no further than its stream's start
(the network's state starts from zero there). Same ids, same vocabulary (the unknown id included), same
targets: the nats per character compare like for like.

Pure numpy: every n-gram is an integer key (a history's id times the vocabulary size plus the next id), counted
with ``np.unique`` and looked up with ``np.searchsorted``, so 1M characters take seconds, not minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Orders tried for the n-gram baseline; 7 characters of context is where a Kneser-Ney character model on a
# million characters stops improving (longer histories are seen once and only back off).
MAX_NGRAM_ORDER = 7
# Share of the training ids (its end) held out to choose the n-gram order; the validation split is never used
# for that, so the baseline it reports is not tuned on the text it is scored on.
ORDER_SELECTION_SHARE = 0.1


@dataclass(frozen=True)
class BaselineScores:
    """Validation nats per character of the count baselines, and the n-gram order chosen on held-out train."""

    unigram_loss: float
    ngram_loss: float
    ngram_order: int

    @property
    def unigram_perplexity(self) -> float:
        return math.exp(min(self.unigram_loss, 50.0))

    @property
    def ngram_perplexity(self) -> float:
        return math.exp(min(self.ngram_loss, 50.0))

    def metrics(self) -> dict[str, float]:
        """What a child run logs beside the network's ``best_val_loss`` / ``best_val_perplexity``."""
        return {
            "baseline_unigram_val_loss": self.unigram_loss,
            "baseline_unigram_val_perplexity": self.unigram_perplexity,
            "baseline_ngram_val_loss": self.ngram_loss,
            "baseline_ngram_val_perplexity": self.ngram_perplexity,
            "baseline_ngram_order": float(self.ngram_order),
        }


def scored_positions(length: int, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the characters :func:`~seqflow.charlm.train.stream_loss` predicts in a text of ``length``
    ids read as ``streams`` streams, and how many characters of context each has (back to its stream's start)."""
    streams = max(1, min(streams, (length - 1) // 2))
    stream_length = (length - 1) // streams
    if stream_length < 1:
        raise ValueError(f"a text of {length} characters is too short to score")
    offsets = np.arange(1, stream_length + 1)
    positions = (np.arange(streams)[:, None] * stream_length + offsets[None, :]).ravel()
    context = np.tile(offsets, streams)
    return positions, context


def unigram_loss(train_ids: np.ndarray, validation_ids: np.ndarray, vocab_size: int, streams: int) -> float:
    """Nats per scored validation character of the add-one unigram: P(c) = (count(c) + 1) / (N + V)."""
    counts = np.bincount(np.asarray(train_ids, np.int64), minlength=vocab_size).astype(np.float64)
    probabilities = (counts + 1.0) / (counts.sum() + vocab_size)
    positions, _ = scored_positions(len(validation_ids), streams)
    return float(-np.log(probabilities[np.asarray(validation_ids, np.int64)[positions]]).mean())


class KneserNeyModel:
    """Interpolated Kneser-Ney character n-grams of orders 1..``max_order`` fitted on ``train_ids``.

    The highest order a character uses takes raw counts, lower orders continuation counts (in how many
    contexts a shorter n-gram was seen), each order with one absolute discount D = n1 / (n1 + 2 n2) of its
    counts of counts; order 1 interpolates with the uniform distribution over ``vocab_size`` ids, so every id,
    the unknown one included, has some probability.
    """

    def __init__(self, train_ids: np.ndarray, vocab_size: int, max_order: int = MAX_NGRAM_ORDER) -> None:
        ids = np.asarray(train_ids, dtype=np.int64)
        if max_order < 1:
            raise ValueError(f"max_order must be at least 1, got {max_order}")
        if len(ids) < 2:
            raise ValueError("an n-gram model needs at least two training characters")
        self.vocab_size, self.max_order = vocab_size, max_order
        n = len(ids)
        # history[p]: id of the k-1 characters before position p at order k (-1 where the text has fewer).
        history = np.zeros(n, dtype=np.int64)
        self.orders: list[_OrderCounts] = []
        for k in range(1, max_order + 1):
            if k > 1:
                previous = np.full(n, -1, dtype=np.int64)
                previous[k - 1 :] = ids[: n - k + 1]
                valid = (history >= 0) & (previous >= 0)
                keys = previous[valid] * self.orders[-1].history_count + history[valid]
                history_keys, inverse = np.unique(keys, return_inverse=True)
                history = np.full(n, -1, dtype=np.int64)
                history[valid] = inverse
            else:
                history_keys = np.zeros(1, dtype=np.int64)
            self.orders.append(_OrderCounts.count(history, history_keys, ids, vocab_size))
        # Continuation counts of order k: in how many distinct (k+1)-grams each k-gram is the suffix.
        for lower, higher in zip(self.orders, self.orders[1:]):
            lower.set_continuations(higher)
        self.orders[-1].set_continuations(None)

    def position_log_probabilities(self, ids: np.ndarray, positions: np.ndarray, context: np.ndarray) -> dict[int, np.ndarray]:
        """Natural-log probability of ``ids[positions]`` under every order 1..max_order, each position's
        history cut to its ``context`` characters (an order needing more uses the longest that fits)."""
        ids = np.asarray(ids, dtype=np.int64)
        targets = ids[positions]
        uniform = np.full(len(positions), 1.0 / self.vocab_size)
        lower_probability = uniform
        history = np.zeros(len(positions), dtype=np.int64)
        top: dict[int, np.ndarray] = {}
        for k, order in enumerate(self.orders, start=1):
            if k > 1:
                preceding = positions - (k - 1)
                fits = (context >= k - 1) & (history >= 0)
                keys = np.where(fits, ids[np.maximum(preceding, 0)] * self.orders[k - 2].history_count + history, -1)
                history = np.where(fits, _lookup(order.history_keys, keys), -1)
            top[k] = order.probability(history, targets, lower_probability, continuation=False)
            lower_probability = order.probability(history, targets, lower_probability, continuation=True)
        # Where an order's history does not fit in the context, that order's model falls back to the longest
        # order that fits, as the network falls back to the state it has.
        result = {}
        for n in range(1, self.max_order + 1):
            usable = np.minimum(n, context + 1)
            chosen = np.choose(usable - 1, [top[k] for k in range(1, n + 1)]) if n > 1 else top[1]
            result[n] = np.log(chosen)
        return result

    def losses(self, ids: np.ndarray, streams: int) -> dict[int, float]:
        """Nats per scored character (as stream_loss scores ``ids``) for every order."""
        positions, context = scored_positions(len(ids), streams)
        return {n: float(-values.mean()) for n, values in self.position_log_probabilities(ids, positions, context).items()}


@dataclass
class _OrderCounts:
    """The counts of one order k: histories (k-1 characters) and k-grams, raw and continuation."""

    vocab_size: int
    history_keys: np.ndarray
    history_count: int
    gram_keys: np.ndarray
    gram_counts: np.ndarray
    # Per history id: raw count, distinct followers.
    history_totals: np.ndarray
    history_types: np.ndarray
    discount: float
    # Set by set_continuations: per gram, per history.
    continuation_counts: np.ndarray | None = None
    continuation_totals: np.ndarray | None = None
    continuation_types: np.ndarray | None = None

    @classmethod
    def count(cls, history: np.ndarray, history_keys: np.ndarray, ids: np.ndarray, vocab_size: int) -> _OrderCounts:
        valid = history >= 0
        gram_keys, gram_counts = np.unique(history[valid] * vocab_size + ids[valid], return_counts=True)
        history_count = len(history_keys)
        gram_history = gram_keys // vocab_size
        return cls(
            vocab_size=vocab_size,
            history_keys=history_keys,
            history_count=history_count,
            gram_keys=gram_keys,
            gram_counts=gram_counts.astype(np.float64),
            history_totals=np.bincount(gram_history, weights=gram_counts, minlength=history_count),
            history_types=np.bincount(gram_history, minlength=history_count).astype(np.float64),
            discount=_discount(gram_counts),
        )

    def set_continuations(self, higher: _OrderCounts | None) -> None:
        """Continuation counts from the next order's grams (the highest order keeps its raw counts)."""
        if higher is None:
            counts = self.gram_counts
        else:
            # Each distinct (k+1)-gram adds one to its k-gram suffix: drop its first character.
            suffix_keys = self._suffix_gram_keys(higher)
            counts = np.bincount(np.searchsorted(self.gram_keys, suffix_keys), minlength=len(self.gram_keys)).astype(np.float64)
        gram_history = self.gram_keys // self.vocab_size
        self.continuation_counts = counts
        self.continuation_totals = np.bincount(gram_history, weights=counts, minlength=self.history_count)
        self.continuation_types = np.bincount(gram_history, weights=(counts > 0), minlength=self.history_count)

    def _suffix_gram_keys(self, higher: _OrderCounts) -> np.ndarray:
        # A higher history id -> its own suffix history id at this order: the higher history keys are
        # (first char) * history_count + (suffix history id).
        higher_history = higher.gram_keys // self.vocab_size
        suffix_history = higher.history_keys[higher_history] % self.history_count
        return suffix_history * self.vocab_size + higher.gram_keys % self.vocab_size

    def probability(self, history: np.ndarray, targets: np.ndarray, lower: np.ndarray, continuation: bool) -> np.ndarray:
        """P_k(target | history) interpolated with ``lower``; an unseen history (-1) keeps ``lower``."""
        counts = self.continuation_counts if continuation else self.gram_counts
        totals = self.continuation_totals if continuation else self.history_totals
        types = self.continuation_types if continuation else self.history_types
        seen = history >= 0
        safe_history = np.where(seen, history, 0)
        gram_index = _lookup(self.gram_keys, np.where(seen, safe_history * self.vocab_size + targets, -1))
        count = np.where(gram_index >= 0, counts[np.maximum(gram_index, 0)], 0.0)
        total = totals[safe_history]
        usable = seen & (total > 0)
        denominator = np.where(usable, total, 1.0)
        discounted = np.maximum(count - self.discount, 0.0) / denominator
        backoff_weight = self.discount * types[safe_history] / denominator
        return np.where(usable, discounted + backoff_weight * lower, lower)


def _discount(gram_counts: np.ndarray) -> float:
    """Absolute discount D = n1 / (n1 + 2 n2) (Ney et al.), kept inside (0, 1) for degenerate tiny texts."""
    n1, n2 = float((gram_counts == 1).sum()), float((gram_counts == 2).sum())
    if n1 == 0:
        return 0.5
    return float(min(max(n1 / (n1 + 2 * n2), 0.05), 0.95))


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in ``sorted_keys``, -1 where it is absent (negative keys are absent)."""
    index = np.searchsorted(sorted_keys, keys)
    clipped = np.minimum(index, len(sorted_keys) - 1)
    found = (keys >= 0) & (len(sorted_keys) > 0) & (sorted_keys[clipped] == keys)
    return np.where(found, clipped, -1)


def choose_ngram_order(train_ids: np.ndarray, vocab_size: int, streams: int, max_order: int = MAX_NGRAM_ORDER) -> int:
    """The order (1..max_order) with the lowest loss on the last :data:`ORDER_SELECTION_SHARE` of the training
    ids, fitted on the rest: chosen without looking at validation. A text too short to hold out a slice gets 3."""
    ids = np.asarray(train_ids, dtype=np.int64)
    held_out = int(len(ids) * ORDER_SELECTION_SHARE)
    if held_out < 10 or len(ids) - held_out < 2:
        return min(3, max_order)
    losses = KneserNeyModel(ids[:-held_out], vocab_size, max_order).losses(ids[-held_out:], streams)
    return min(losses, key=lambda order: (losses[order], order))


def baseline_scores(train_ids: np.ndarray, validation_ids: np.ndarray, vocab_size: int, streams: int) -> BaselineScores:
    """Unigram and Kneser-Ney n-gram validation loss, scored as ``stream_loss(..., streams, ...)`` scores."""
    order = choose_ngram_order(train_ids, vocab_size, streams)
    ngram = KneserNeyModel(train_ids, vocab_size, order).losses(validation_ids, streams)[order]
    return BaselineScores(unigram_loss(train_ids, validation_ids, vocab_size, streams), ngram, order)
