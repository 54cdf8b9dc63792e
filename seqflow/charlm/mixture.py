"""The network interpolated with the Kneser-Ney n-gram: p = λ·p_network + (1-λ)·p_ngram (``training.ngram_interpolation``).

On a small corpus a count model recalls the exact phrases the text repeats and a small network generalises
between them; their linear mixture beats both (Mikolov's RNNLM+KN5). The n-gram is the baseline's
(:mod:`seqflow.charlm.baselines`): fitted on the training ids only, its order chosen on held-out training text.
λ is chosen by a 1-D search on the validation characters, as the best epoch is: one number fitted on thousands of
characters. How optimistic that is gets measured, not assumed: each half of the validation streams is also scored
with the λ chosen on the other half (``mixture_crossfit_val_loss``), and the two numbers are logged side by side.

The n-gram travels with the registered model as one artifact (:data:`MIXTURE_FILE`): the training ids it counts,
its order and λ. The counts are rebuilt from the ids when the model loads (seconds for a million characters):
the ids are a fraction of the size of the counts of every order, and they rebuild exactly the same model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqflow.charlm.baselines import KneserNeyModel, choose_ngram_order, scored_positions
from seqflow.core.errors import SeqflowError

# The model artifact's file name (its key is seqflow.charlm.generate.MIXTURE_ARTIFACT).
MIXTURE_FILE = "ngram_mixture.npz"
# Golden-section steps of the λ search: the bracket shrinks to 0.618^60 of [0, 1], far below what matters.
SEARCH_STEPS = 60
# Probabilities are floored here before taking logs (a mixture with λ in (0, 1) never reaches it).
TINY = 1e-300


@dataclass(frozen=True)
class MixtureScores:
    """Validation nats per character of the network, the n-gram and their mixture (λ chosen on them)."""

    network_loss: float
    ngram_loss: float
    mixture_loss: float
    weight: float
    crossfit_loss: float
    ngram_order: int

    def metrics(self) -> dict[str, float]:
        perplexity = lambda loss: math.exp(min(loss, 50.0))  # noqa: E731
        return {
            "network_val_loss": self.network_loss, "network_val_perplexity": perplexity(self.network_loss),
            "ngram_val_loss": self.ngram_loss, "ngram_val_perplexity": perplexity(self.ngram_loss),
            "mixture_val_loss": self.mixture_loss, "mixture_val_perplexity": perplexity(self.mixture_loss),
            "mixture_crossfit_val_loss": self.crossfit_loss, "mixture_weight": self.weight,
        }


def mixture_log_probabilities(network: np.ndarray, ngram: np.ndarray, weight: float) -> np.ndarray:
    """log(λ·exp(network) + (1-λ)·exp(ngram)), element-wise, for log-probabilities of the same characters."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(weight) + network, np.log1p(-weight) + ngram)


def choose_weight(network: np.ndarray, ngram: np.ndarray) -> float:
    """The λ in [0, 1] with the lowest mean mixture loss on these characters. The loss is convex in λ (minus the
    log of a function linear in λ), so a golden-section search finds its minimum; the ends are tried too."""
    network, ngram = np.ravel(network), np.ravel(ngram)

    def loss(weight: float) -> float:
        return float(-mixture_log_probabilities(network, ngram, weight).mean())

    low, high = 0.0, 1.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(SEARCH_STEPS):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    candidates = [0.0, 1.0, (low + high) / 2]
    return min(candidates, key=lambda weight: (loss(weight), -weight))


def crossfit_loss(network: np.ndarray, ngram: np.ndarray) -> float:
    """Mean mixture loss of (streams, length) log-probabilities when each half of the streams (even and odd rows)
    is scored with the λ chosen on the other half: the number λ was not fitted on."""
    if network.shape[0] < 2:
        return float(-mixture_log_probabilities(network, ngram, choose_weight(network, ngram)).mean())
    halves = [np.arange(network.shape[0]) % 2 == parity for parity in (0, 1)]
    total = 0.0
    for scored, fitted in (halves, halves[::-1]):
        weight = choose_weight(network[fitted], ngram[fitted])
        total += float(-mixture_log_probabilities(network[scored], ngram[scored], weight).sum())
    return total / network.size


class NgramMixture:
    """The n-gram side of a mixture model: a Kneser-Ney model of the training ids and the network's weight λ."""

    def __init__(self, train_ids: np.ndarray, vocab_size: int, order: int, weight: float,
                 ngram: KneserNeyModel | None = None) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the network's weight must be in [0, 1], got {weight}")
        self.train_ids = np.asarray(train_ids, dtype=np.int32)
        self.vocab_size, self.order, self.weight = int(vocab_size), int(order), float(weight)
        self.ngram = ngram if ngram is not None else KneserNeyModel(self.train_ids, self.vocab_size, self.order)

    def with_weight(self, weight: float) -> NgramMixture:
        """The same n-gram (not counted again) with another λ."""
        return NgramMixture(self.train_ids, self.vocab_size, self.order, weight, self.ngram)

    def save(self, path: Path) -> Path:
        np.savez_compressed(
            path, train_ids=self.train_ids, vocab_size=self.vocab_size, order=self.order, weight=self.weight
        )
        return Path(path)

    @classmethod
    def load(cls, path: Path | str) -> NgramMixture:
        try:
            with np.load(path) as stored:
                return cls(stored["train_ids"], int(stored["vocab_size"]), int(stored["order"]), float(stored["weight"]))
        except (OSError, KeyError, ValueError) as exc:
            raise SeqflowError(f"the model's n-gram artifact {str(path)!r} cannot be read ({exc}); retrain the model") from None

    def next_probabilities(self, context: list[int] | np.ndarray) -> np.ndarray:
        """P(next id | the last ids of ``context``) over the whole vocabulary: the model the scores use, dense."""
        orders = self.ngram.orders
        usable = min(self.order, len(context) + 1)
        probabilities = np.full(self.vocab_size, 1.0 / self.vocab_size)
        history = 0
        for k in range(1, usable + 1):
            counts = orders[k - 1]
            if k > 1 and history >= 0:
                key = int(context[-(k - 1)]) * orders[k - 2].history_count + history
                found = int(np.searchsorted(counts.history_keys, key))
                history = found if found < len(counts.history_keys) and counts.history_keys[found] == key else -1
            probabilities = _dense_order(counts, history, probabilities, continuation=k < usable)
        return probabilities

    def mix(self, network_probabilities: np.ndarray, context: list[int] | np.ndarray) -> np.ndarray:
        return self.weight * network_probabilities + (1.0 - self.weight) * self.next_probabilities(context)


def _dense_order(counts, history: int, lower: np.ndarray, continuation: bool) -> np.ndarray:  # noqa: ANN001
    """One order's interpolated distribution after ``history`` over every id (the dense form of
    ``_OrderCounts.probability``); an unseen history keeps ``lower``."""
    totals = counts.continuation_totals if continuation else counts.history_totals
    if history < 0 or totals[history] <= 0:
        return lower
    values = counts.continuation_counts if continuation else counts.gram_counts
    types = counts.continuation_types if continuation else counts.history_types
    vocab = counts.vocab_size
    start, stop = np.searchsorted(counts.gram_keys, [history * vocab, (history + 1) * vocab])
    dense = np.zeros(vocab)
    dense[counts.gram_keys[start:stop] % vocab] = values[start:stop]
    total = totals[history]
    return np.maximum(dense - counts.discount, 0.0) / total + counts.discount * types[history] / total * lower


def fit_mixture(step_model, train_ids: np.ndarray, validation_ids: np.ndarray, vocab_size: int, streams: int,  # noqa: ANN001
                window: int) -> tuple[NgramMixture, MixtureScores]:
    """The baseline's n-gram of ``train_ids`` mixed with the network, λ chosen on the validation characters
    (scored as :func:`seqflow.charlm.train.stream_loss` scores them), and the three models' scores."""
    order = choose_ngram_order(train_ids, vocab_size, streams)
    mixture = NgramMixture(train_ids, vocab_size, order, 1.0)
    network, ngram = _log_probabilities(step_model, mixture, validation_ids, streams, window)
    mixture = mixture.with_weight(choose_weight(network, ngram))
    return mixture, _scores(network, ngram, mixture)


def mixture_scores(step_model, mixture: NgramMixture, validation_ids: np.ndarray, streams: int, window: int) -> MixtureScores:  # noqa: ANN001
    """The network, n-gram and mixture (with the mixture's own λ) scores on ``validation_ids``."""
    return _scores(*_log_probabilities(step_model, mixture, validation_ids, streams, window), mixture)


def mixture_block_log_probabilities(step_model, mixture: NgramMixture | None, ids: np.ndarray, streams: int,  # noqa: ANN001
                                    window: int) -> np.ndarray:
    """(streams, length) log-probabilities of the registered model: the mixture's, or the network's alone."""
    from seqflow.charlm.train import stream_log_probabilities

    if mixture is None:
        return stream_log_probabilities(step_model, ids, streams, window)
    return mixture_log_probabilities(*_log_probabilities(step_model, mixture, ids, streams, window), mixture.weight)


def _log_probabilities(step_model, mixture: NgramMixture, ids: np.ndarray, streams: int, window: int):  # noqa: ANN001, ANN202
    from seqflow.charlm.train import stream_log_probabilities

    network = stream_log_probabilities(step_model, ids, streams, window)
    positions, context = scored_positions(len(ids), streams)
    ngram = mixture.ngram.position_log_probabilities(ids, positions, context)[mixture.order]
    return network, np.maximum(ngram, math.log(TINY)).reshape(network.shape)


def _scores(network: np.ndarray, ngram: np.ndarray, mixture: NgramMixture) -> MixtureScores:
    return MixtureScores(
        network_loss=float(-network.mean()), ngram_loss=float(-ngram.mean()),
        mixture_loss=float(-mixture_log_probabilities(network, ngram, mixture.weight).mean()),
        weight=mixture.weight, crossfit_loss=crossfit_loss(network, ngram), ngram_order=mixture.order,
    )
