"""Behavioural tests of the served model: invariance, direction and minimum functionality.

The first half checks the checks themselves with fake models whose pass rates are known. The second half runs
them against a champion: by default the champion of a small pipeline run trained in this session (real short
reviews, embedding_pool, a few epochs); with ``SEQFLOW_BEHAVIOUR_MODEL_URI`` set (e.g.
``models:/seqflow-imdb-sentiment@champion``, with ``MLFLOW_TRACKING_URI`` naming its store) against that model.
The pass rates each check type must reach are :class:`seqflow.sentiment.config.BehaviourConfig`'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pytest

from seqflow.sentiment.behaviour import (
    CHECK_TYPES,
    DIRECTION,
    DIRECTION_PAIRS,
    INVARIANCE,
    INVARIANCE_NAMES,
    MINIMUM_FUNCTIONALITY,
    MINIMUM_FUNCTIONALITY_CASES,
    describe_failures,
    invariance_pairs,
    metric_name,
    minimum_pass_rate,
    pass_rates,
    pyfunc_predictor,
    run_behaviour_checks,
)
from seqflow.sentiment.config import BehaviourConfig, with_overrides
from seqflow.sentiment.profiles import get_profile
from seqflow.core.errors import ConfigError, SeqflowError
from seqflow.sentiment.serving import REVIEW_SENTIMENT

MODEL_URI_ENV = "SEQFLOW_BEHAVIOUR_MODEL_URI"
CONFIG = BehaviourConfig()


# --- the checks, with fake models ----------------------------------------------------------------------------


def constant(probability: float):
    return lambda texts: np.full(len(texts), probability)


def test_a_constant_model_is_invariant_but_has_no_direction_and_one_label():
    rates = pass_rates(run_behaviour_checks(constant(0.7), CONFIG))
    assert rates[INVARIANCE] == 1.0
    # Adding "awful" must lower the probability; unchanged is a failure.
    assert rates[DIRECTION] == 0.0
    positives = sum(label for _, label in MINIMUM_FUNCTIONALITY_CASES)
    assert rates[MINIMUM_FUNCTIONALITY] == positives / len(MINIMUM_FUNCTIONALITY_CASES)


@pytest.mark.parametrize(("shift", "expected"), [(0.05, 1.0), (0.3, 0.0)])
def test_invariance_fails_when_a_name_moves_the_probability_beyond_the_tolerance(shift, expected):
    reference_actor = INVARIANCE_NAMES[0][0]

    def likes_the_reference_actor(texts: Sequence[str]) -> np.ndarray:
        return np.array([0.5 + shift if reference_actor in text else 0.5 for text in texts])

    rates = pass_rates(run_behaviour_checks(likes_the_reference_actor, BehaviourConfig(invariance_tolerance=0.1)))
    assert rates[INVARIANCE] == expected


def lexicon_model(texts: Sequence[str]) -> np.ndarray:
    """A bag-of-words scorer that knows sentiment words and negations but no names."""
    positive = {"wonderful", "great", "best", "loved", "enjoyed", "excellent", "superb", "beautiful", "brilliant",
                "moving", "recommended", "good", "fine", "worth", "touching", "lovely", "likeable", "liked", "charming"}
    negative = {"terrible", "hated", "bad", "boring", "worst", "awful", "dull", "avoid", "disliked", "waste", "stupid",
                "badly", "poor", "not", "never"}  # fmt: skip
    scores = []
    for text in texts:
        words = re.findall(r"[a-z]+", text.lower())
        score = sum(word in positive for word in words) - 2 * sum(word in negative for word in words)
        scores.append(1.0 / (1.0 + np.exp(-score)))
    return np.array(scores)


def test_a_model_that_reads_sentiment_words_passes_every_check():
    results = run_behaviour_checks(lexicon_model, CONFIG)
    assert pass_rates(results) == {check: 1.0 for check in CHECK_TYPES}, describe_failures(results)


def test_a_model_that_reads_sentiment_words_backwards_fails_direction_and_functionality():
    results = run_behaviour_checks(lambda texts: 1.0 - lexicon_model(texts), CONFIG)
    rates = pass_rates(results)
    assert rates[INVARIANCE] == 1.0
    assert rates[DIRECTION] == 0.0 and rates[MINIMUM_FUNCTIONALITY] == 0.0
    failures = describe_failures(results, DIRECTION).splitlines()
    assert len(failures) == len(DIRECTION_PAIRS) and all(line.startswith("direction: ") for line in failures)


def test_direction_margin_is_required_not_just_any_drop():
    def slightly_lower_when_awful(texts: Sequence[str]) -> np.ndarray:
        return np.array([0.5 - 0.01 * ("awful" in text.lower()) for text in texts])

    with_awful = sum("awful" in negative.lower() and "awful" not in base.lower() for base, negative in DIRECTION_PAIRS)
    assert 0 < with_awful < len(DIRECTION_PAIRS)
    lenient = pass_rates(run_behaviour_checks(slightly_lower_when_awful, BehaviourConfig(direction_margin=0.0)))
    strict = pass_rates(run_behaviour_checks(slightly_lower_when_awful, BehaviourConfig(direction_margin=0.05)))
    assert lenient[DIRECTION] == with_awful / len(DIRECTION_PAIRS)
    assert strict[DIRECTION] == 0.0


def test_a_model_answering_the_wrong_number_or_kind_of_values_is_a_clear_error():
    with pytest.raises(SeqflowError, match=r"returned 1 probabilities for \d+ texts"):
        run_behaviour_checks(lambda texts: np.array([0.5]), CONFIG)
    with pytest.raises(SeqflowError, match="outside \\[0, 1\\]"):
        run_behaviour_checks(lambda texts: np.full(len(texts), 3.0), CONFIG)


def test_pyfunc_predictor_sends_a_text_column_and_reads_probability():
    seen: list[pd.DataFrame] = []

    class FakePyfunc:
        def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
            seen.append(frame)
            return pd.DataFrame({"probability": np.linspace(0.1, 0.9, len(frame)), "label": 0})

    probabilities = pyfunc_predictor(FakePyfunc())(["a", "b", "c"])
    assert list(seen[0].columns) == ["text"] and seen[0]["text"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(probabilities, [0.1, 0.5, 0.9])


def test_cases_differ_only_where_they_say():
    (actor, film), *_ = INVARIANCE_NAMES
    for reference, swapped in invariance_pairs():
        assert reference != swapped
        # Putting the reference names back turns the variant into the reference review.
        for other_actor, other_film in INVARIANCE_NAMES[1:]:
            swapped = swapped.replace(other_actor, actor).replace(other_film, film)
        assert swapped == reference
    for base, negative in DIRECTION_PAIRS:
        added = set(re.findall(r"[a-z]+", negative.lower())) - set(re.findall(r"[a-z]+", base.lower()))
        assert added & {"awful", "not", "never"}, (base, negative)
    assert {label for _, label in MINIMUM_FUNCTIONALITY_CASES} == {0, 1}


def test_metric_names_and_floors():
    assert [metric_name(check) for check in CHECK_TYPES] == [
        "behaviour_invariance_pass_rate", "behaviour_direction_pass_rate", "behaviour_minimum_functionality_pass_rate",
    ]  # fmt: skip
    assert minimum_pass_rate(DIRECTION, CONFIG) == CONFIG.min_direction_pass_rate


def test_behaviour_config_rejects_values_outside_their_range():
    with pytest.raises(ConfigError, match="behaviour.invariance_tolerance"):
        with_overrides(get_profile("quick"), {"behaviour.invariance_tolerance": "1.5"})
    with pytest.raises(ConfigError, match="behaviour.decision_threshold"):
        BehaviourConfig(decision_threshold=0.0)
    assert with_overrides(get_profile("quick"), {"behaviour.direction_margin": "0.02"}).behaviour.direction_margin == 0.02


# --- the checks against a champion ---------------------------------------------------------------------------

# The model the behavioural tests train when no model URI is given: real short reviews, the cheapest
# architecture; enough data and epochs that it learns the common sentiment words (measured: README).
TINY_RUN_REVIEWS_PER_LABEL = 1_000
TINY_RUN_MAX_REVIEW_CHARS = 600


@pytest.fixture(scope="module")
def champion(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """``(predict, pipeline-logged pass rates or None)`` for the champion under test."""
    from seqflow.core.settings import load_settings
    from seqflow.core.tracking import Tracker

    model_uri = os.environ.get(MODEL_URI_ENV)
    if model_uri:
        settings = load_settings(environ=os.environ)
        return pyfunc_predictor(Tracker(settings).load_pyfunc(model_uri, REVIEW_SENTIMENT)), None
    return _champion_of_a_tiny_run(request, tmp_path_factory.mktemp("behaviour"))


def _champion_of_a_tiny_run(request: pytest.FixtureRequest, root: Path):
    from mlflow import MlflowClient

    from seqflow.flows.sentiment import sentiment_flow
    from seqflow.core.settings import TrackingSettings
    from seqflow.core.tracking import Tracker

    request.getfixturevalue("prefect_api")
    reviews = request.getfixturevalue("embedded_reviews")
    short = reviews[reviews["text"].str.len() <= TINY_RUN_MAX_REVIEW_CHARS]
    sample = short.groupby("label", group_keys=False).head(TINY_RUN_REVIEWS_PER_LABEL).reset_index(drop=True)
    csv_path = root / "reviews.csv"
    sample.to_csv(csv_path, index=False)
    config = with_overrides(
        get_profile("quick"),
        {
            "data.source": f"csv:{csv_path}",
            "artifacts_dir": str(root / "artifacts"),
            "tokenisation.vocab_size": "5000",
            "tokenisation.max_length": "128",
            # 1,400 training reviews cannot cover the vocabulary of the other splits.
            "contracts.max_oov_rate": "0.25",
            "contracts.max_all_padding_rows": "0.02",
            "training.architectures": "embedding_pool",
            "training.epochs": "3",
            "training.batch_size": "32",
            "training.learning_rate": "0.005",
            "training.embedding_dim": "16",
            "training.dense_units": "16",
            "promotion.accuracy_floor": "0.0",
        },
    )
    settings = TrackingSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        experiment_name="seqflow-behaviour",
        registered_model_name="seqflow-behaviour-sentiment",
        artifact_location=(root / "mlartifacts").as_uri(),
    )
    summary = sentiment_flow(config, settings)
    tracker = Tracker(settings)
    model = tracker.load_pyfunc(f"models:/{settings.registered_model_name}@champion", REVIEW_SENTIMENT)
    run_id = tracker.champion().run_id
    logged = MlflowClient(settings.tracking_uri).get_run(run_id).data.metrics
    print(f"tiny champion: {summary.render()}")
    return pyfunc_predictor(model), {check: logged[metric_name(check)] for check in CHECK_TYPES}


@pytest.fixture(scope="module")
def champion_results(champion):
    predict, _ = champion
    return run_behaviour_checks(predict, CONFIG)


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECK_TYPES)
def test_champion_passes_behavioural_check(champion_results, check):
    rate = pass_rates(champion_results)[check]
    floor = minimum_pass_rate(check, CONFIG)
    print(f"{check}: pass rate {rate:.3f} (floor {floor})")
    assert rate >= floor, f"{check} pass rate {rate:.3f} < {floor}; failed cases:\n{describe_failures(champion_results, check)}"


@pytest.mark.slow
def test_pipeline_logged_the_same_pass_rates_it_would_serve(champion, champion_results):
    _, logged = champion
    if logged is None:
        pytest.skip(f"{MODEL_URI_ENV} names a model; the pipeline's logged rates are checked on the tiny run only")
    assert logged == pytest.approx(pass_rates(champion_results))
