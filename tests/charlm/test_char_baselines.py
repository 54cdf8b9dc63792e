"""The count baselines: hand-computed probabilities on a tiny text, the network's scoring positions, speed-free."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqflow.charlm.baselines import (
    KneserNeyModel,
    baseline_scores,
    choose_ngram_order,
    scored_positions,
    unigram_loss,
)
from seqflow.charlm.train import stream_loss

# Vocabulary a=0, b=1, c=2; training text "aabab", validation "abc".
TRAIN = np.array([0, 0, 1, 0, 1])
VALIDATION = np.array([0, 1, 2])


def test_unigram_is_add_one_over_the_vocabulary():
    # counts a=3, b=2, c=0 over N=5, V=3: P(b) = 3/8, P(c) = 1/8; "abc" in one stream scores b and c.
    assert unigram_loss(TRAIN, VALIDATION, 3, streams=1) == pytest.approx(-(math.log(3 / 8) + math.log(1 / 8)) / 2)


def test_kneser_ney_bigram_matches_the_hand_computation():
    # Bigrams aa:1 ab:2 ba:1 -> D2 = n1/(n1+2 n2) = 2/4; unigram counts have no singletons -> D1 = 0.5.
    # Continuation counts (distinct left contexts): a:2 (aa, ba), b:1 (ab) over 3, two types:
    #   Pc(b) = 0.5/3 + 0.5*2/3 * 1/3 = 5/18, Pc(c) = 1/9.
    # P(b|a) = (2-0.5)/3 + 0.5*2/3 * Pc(b) = 16/27;  P(c|b) = 0 + 0.5*1/1 * Pc(c) = 1/18.
    # Order 1 alone uses raw counts: P(b) = 1.5/5 + 0.5*2/5 * 1/3 = 11/30, P(c) = 1/15.
    losses = KneserNeyModel(TRAIN, 3, max_order=2).losses(VALIDATION, streams=1)
    assert losses[2] == pytest.approx(-(math.log(16 / 27) + math.log(1 / 18)) / 2)
    assert losses[1] == pytest.approx(-(math.log(11 / 30) + math.log(1 / 15)) / 2)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_order_is_a_distribution_over_the_vocabulary(order):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 6, 400) * (rng.random(400) < 0.7)  # skewed, with repeats
    model = KneserNeyModel(train, 7, max_order=4)  # id 6 never occurs in training
    context = train[50:53]
    ids = np.concatenate([np.repeat(context[None], 7, axis=0), np.arange(7)[:, None]], axis=1).ravel()
    log_probabilities = model.position_log_probabilities(ids, np.arange(7) * 4 + 3, np.full(7, 3))
    assert np.exp(log_probabilities[order]).sum() == pytest.approx(1.0)
    assert np.isfinite(log_probabilities[order]).all()


def test_history_stops_at_the_stream_start():
    # With one character of context a 3-gram model can only use its bigram estimate.
    model = KneserNeyModel(TRAIN, 3, max_order=3)
    ids = np.array([0, 1, 0, 1])
    short = model.position_log_probabilities(ids, np.array([2]), np.array([1]))
    full = model.position_log_probabilities(ids, np.array([2]), np.array([2]))
    assert short[3] == pytest.approx(short[2]) and short[3] != pytest.approx(full[3])


class _BigramStepModel:
    """Stands in for a step model without state whose logits are log P(next | current) of a bigram table."""

    inputs = [None]

    def __init__(self, log_table: np.ndarray) -> None:
        self.log_table = log_table

    def __call__(self, inputs, training=False):  # noqa: ANN001, ANN204
        return [self.log_table[np.asarray(inputs[0])]]


def test_scored_characters_are_those_stream_loss_scores():
    rng = np.random.default_rng(1)
    train, validation = rng.integers(0, 5, 3_000), rng.integers(0, 5, 1_003)
    model = KneserNeyModel(train, 5, max_order=2)
    # The bigram table, read off the model one (previous, next) pair at a time.
    pairs = np.array([[p, n] for p in range(5) for n in range(5)]).ravel()
    table = model.position_log_probabilities(pairs, np.arange(25) * 2 + 1, np.ones(25, int))[2].reshape(5, 5)
    for streams, window in [(1, 1_000), (16, 7), (7, 50)]:
        expected = stream_loss(_BigramStepModel(table), validation, streams, window)
        assert model.losses(validation, streams)[2] == pytest.approx(expected)
    positions, context = scored_positions(1_003, 16)
    assert len(positions) == 16 * (1_002 // 16) and context.min() == 1


def test_order_is_chosen_on_training_text_and_follows_its_structure():
    rng = np.random.default_rng(2)
    # A text made of a few repeated 6-character words needs context; independent draws do not.
    words = rng.integers(0, 20, (8, 6))
    structured = words[rng.integers(0, 8, 3_000)].ravel()
    independent = rng.integers(0, 20, 18_000)
    assert choose_ngram_order(structured, 20, 16) >= 4
    assert choose_ngram_order(independent, 20, 16) <= 2
    scores = baseline_scores(structured[:15_000], structured[15_000:], 20, 16)
    assert scores.ngram_order == choose_ngram_order(structured[:15_000], 20, 16)
    assert scores.ngram_perplexity < scores.unigram_perplexity
    assert set(scores.metrics()) >= {"baseline_unigram_val_perplexity", "baseline_ngram_val_perplexity"}
