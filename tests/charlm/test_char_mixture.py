"""The network interpolated with the Kneser-Ney n-gram (training.ngram_interpolation): the mixture's math, its
gate, and a mixture model that registers, loads through the pyfunc loader and generates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from seqflow.charlm.baselines import BaselineScores, baseline_scores, scored_positions
from seqflow.charlm.corpus import ngram_gate
from seqflow.charlm.mixture import NgramMixture, choose_weight, fit_mixture, mixture_log_probabilities
from seqflow.core.errors import ConfigError

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat.\n" * 30


def _ids(text: str, alphabet: list[str]) -> np.ndarray:
    # Id 0 is the unknown id, as in seqflow.charlm.text.
    return np.array([alphabet.index(char) + 1 for char in text], dtype=np.int32)


def _step_model(vocab_size: int, seed: int = 0):
    """An untrained LSTM step model: a network that knows nothing (probabilities near uniform)."""
    from seqflow.core.fitting import seed_everything
    from seqflow.models.charlm import CharLMSpec, build_char_model, build_step_model

    seed_everything(seed)
    return build_step_model(build_char_model("char_lstm", CharLMSpec(vocab_size=vocab_size, embedding_dim=8, rnn_units=8)))


def test_the_weight_and_the_mixture_loss_are_the_ones_worked_out_by_hand():
    # Two characters: the network gives them 0.8 and 0.2, the n-gram 0.2 and 0.8. By symmetry the best weight is
    # 1/2, the mixture gives each 0.5: log 2 nats, below both components' (-log 0.8 - log 0.2) / 2.
    network, ngram = np.log([0.8, 0.2]), np.log([0.2, 0.8])
    weight = choose_weight(network, ngram)
    assert weight == pytest.approx(0.5, abs=1e-6)
    assert -mixture_log_probabilities(network, ngram, weight).mean() == pytest.approx(math.log(2), abs=1e-9)
    assert -network.mean() == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)
    # A component that is better everywhere takes all the weight; the other none.
    assert choose_weight(np.log([0.9, 0.9]), np.log([0.5, 0.5])) == 1.0
    assert choose_weight(np.log([0.1, 0.1]), np.log([0.5, 0.5])) == 0.0


def test_the_mixture_scores_no_worse_than_either_component_and_its_weight_is_the_best():
    alphabet = sorted(set(TEXT))
    ids = _ids(TEXT, alphabet)
    vocab_size = len(alphabet) + 1
    train, validation = ids[:1800], ids[1800:]
    step_model = _step_model(vocab_size)
    mixture, scores = fit_mixture(step_model, train, validation, vocab_size, streams=4, window=100)
    assert scores.mixture_loss <= min(scores.network_loss, scores.ngram_loss) + 1e-12
    # Its n-gram is the baseline's: the same order, the same score (evaluation logs it as the baseline).
    baselines = baseline_scores(train, validation, vocab_size, 4)
    assert (scores.ngram_order, scores.ngram_loss) == (baselines.ngram_order, pytest.approx(baselines.ngram_loss, rel=1e-12))
    # The network knows nothing and the text repeats: the n-gram takes nearly all the weight.
    assert scores.ngram_loss < scores.network_loss and scores.weight < 0.2
    # No other weight does better on the same characters.
    from seqflow.charlm.mixture import _log_probabilities

    network, ngram = _log_probabilities(step_model, mixture, validation, 4, 100)
    for other in (max(0.0, scores.weight - 0.01), min(1.0, scores.weight + 0.01), 0.0, 1.0):
        assert -mixture_log_probabilities(network, ngram, other).mean() >= scores.mixture_loss - 1e-12
    # The metrics say all of it.
    metrics = scores.metrics()
    assert metrics["mixture_weight"] == scores.weight
    assert metrics["mixture_val_perplexity"] == pytest.approx(math.exp(scores.mixture_loss))
    assert metrics["ngram_val_loss"] == scores.ngram_loss


def test_the_dense_next_character_distribution_is_the_scored_model(tmp_path: Path):
    alphabet = sorted(set(TEXT))
    ids = _ids(TEXT, alphabet)
    mixture = NgramMixture(ids[:1800], len(alphabet) + 1, 4, 0.3)
    validation = ids[1800:]
    positions, context = scored_positions(len(validation), 3)
    scored = mixture.ngram.position_log_probabilities(validation, positions, context)[4]
    dense = [
        math.log(mixture.next_probabilities(list(validation[position - min(length, 3) : position]))[validation[position]])
        for position, length in zip(positions, context)
    ]
    np.testing.assert_allclose(dense, scored, rtol=1e-12)
    assert mixture.next_probabilities([1, 2, 3]).sum() == pytest.approx(1.0)
    # Saved and loaded, it is the same model.
    loaded = NgramMixture.load(mixture.save(tmp_path / "mixture.npz"))
    assert (loaded.order, loaded.weight, loaded.vocab_size) == (4, 0.3, len(alphabet) + 1)
    np.testing.assert_array_equal(loaded.next_probabilities([5, 6]), mixture.next_probabilities([5, 6]))


def test_a_mixture_generator_samples_the_mixture():
    from seqflow.charlm.generate import MixtureGenerator

    alphabet = sorted(set(TEXT))
    vocabulary = ["\ufffd", *alphabet]
    ids = _ids(TEXT, alphabet)
    step_model = _step_model(len(vocabulary))
    # λ = 0: the network is ignored, so greedy generation follows the n-gram's most likely characters.
    generator = MixtureGenerator(step_model, vocabulary, NgramMixture(ids, len(vocabulary), 5, 0.0))
    greedy = generator.generate("the c", 20, temperature=0.0)
    expected, context = "", list(_ids("the c", alphabet))
    for _ in range(20):
        chosen = int(np.argmax(generator.mixture.next_probabilities(context[-4:])[1:])) + 1
        expected += vocabulary[chosen]
        context.append(chosen)
    assert greedy == expected and greedy.startswith("at ")
    sampled = generator.generate("the ", 40, temperature=0.8, seed=3)
    assert len(sampled) == 40 and set(sampled) <= set(TEXT)
    assert generator.generate("the ", 40, temperature=0.8, seed=3) == sampled
    with pytest.raises(ConfigError, match="n-gram has"):
        MixtureGenerator(step_model, vocabulary, NgramMixture(ids, len(vocabulary) + 1, 3, 0.5))


def test_the_gate_asks_a_mixture_for_a_real_gain_over_the_ngram():
    baselines = BaselineScores(unigram_loss=3.0, ngram_loss=math.log(100.0), ngram_order=5)
    # λ = 0 matches the n-gram exactly: a network beating nothing is refused, saying what to change.
    refused = ngram_gate("3", 100.0, baselines, mixture_min_gain=0.02)
    assert refused is not None and not refused.promote
    assert "adds too little" in refused.reason and "promotion.mixture_min_gain" in refused.reason
    assert "\n" not in refused.reason
    assert ngram_gate("3", 99.0, baselines, mixture_min_gain=0.02) is not None
    assert ngram_gate("3", 97.0, baselines, mixture_min_gain=0.02) is None
    # A network alone only has to beat it.
    assert ngram_gate("3", 99.0, baselines) is None


def test_the_settings_are_bounded():
    from seqflow.charlm.config import resolve_charlm_config

    config = resolve_charlm_config("quick", None, {"training.ngram_interpolation": "true", "promotion.mixture_min_gain": "0.1"})
    assert config.training.ngram_interpolation and config.promotion.mixture_min_gain == 0.1
    with pytest.raises(ConfigError, match="mixture_min_gain"):
        resolve_charlm_config("quick", None, {"promotion.mixture_min_gain": "1.5"})


@pytest.mark.slow
def test_a_mixture_model_registers_loads_and_generates_and_a_useless_network_is_refused(
    prefect_api, tiny_charlm_config, charlm_tracking_settings
):
    import pandas as pd
    from mlflow import MlflowClient

    from seqflow.charlm.generate import CHAR_GENERATION
    from seqflow.core.tracking import Tracker
    from seqflow.flows.charlm import charlm_flow

    # One epoch at a learning rate that moves nothing: the network adds nothing to the n-gram.
    config = tiny_charlm_config(**{
        "training.architectures": "char_gru", "training.epochs": "1", "training.learning_rate": "1e-6",
        "training.ngram_interpolation": "true", "promotion.require_beating_ngram": "true",
    })
    summary = charlm_flow(config, charlm_tracking_settings)
    assert summary.champion_version is None
    assert "adds too little" in summary.decision_reason and "mixture_min_gain" in summary.decision_reason
    [row] = summary.rows
    assert row.version == "1" and row.mixture_weight is not None and row.mixture_weight < 0.1
    assert "char_gru: the scores are its mixture with the n-gram" in summary.render()
    metrics = MlflowClient(charlm_tracking_settings.tracking_uri).get_run(
        MlflowClient(charlm_tracking_settings.tracking_uri).get_model_version(
            charlm_tracking_settings.registered_model_name, "1").run_id
    ).data.metrics
    assert metrics["best_val_loss"] == pytest.approx(metrics["mixture_val_loss"])
    assert metrics["mixture_val_loss"] <= min(metrics["network_val_loss"], metrics["ngram_val_loss"]) + 1e-9
    assert metrics["ngram_val_loss"] == metrics["baseline_ngram_val_loss"] and 0 <= metrics["mixture_weight"] < 0.1
    # Re-scored as a champion would be (its own files, downloaded), it is scored as the mixture it was logged as.
    from seqflow.charlm.pipeline import perplexity_on, validation_text_of_version

    tracker = Tracker(charlm_tracking_settings)
    version = MlflowClient(charlm_tracking_settings.tracking_uri).get_model_version(
        charlm_tracking_settings.registered_model_name, "1")
    # Its card says what it is and shows the network alone beside it.
    assert "Its predictions are a mixture" in version.description and "| its network alone |" in version.description
    rescored = perplexity_on(tracker, version, validation_text_of_version(tracker, version))
    assert rescored == pytest.approx(metrics["mixture_val_perplexity"], rel=1e-6)
    assert abs(rescored - metrics["network_val_perplexity"]) > 1e-3
    # The registered version (not promoted) is the mixture: it loads through seqflow's pyfunc loader and generates.
    model = Tracker(charlm_tracking_settings).load_pyfunc(
        f"models:/{charlm_tracking_settings.registered_model_name}/1", CHAR_GENERATION
    )
    result = model.predict(pd.DataFrame({"prefix": ["ROMEO:"], "length": [30], "temperature": [0.8], "seed": [1]}))
    assert len(result["continuation"][0]) == 30
    again = model.predict(pd.DataFrame({"prefix": ["ROMEO:"], "length": [30], "temperature": [0.8], "seed": [1]}))
    assert again["continuation"][0] == result["continuation"][0]
