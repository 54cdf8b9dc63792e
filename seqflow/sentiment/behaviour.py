"""Behavioural checks of a served sentiment model: what it should do, whatever its test accuracy says.

Three kinds of check, each a list of small hand-written cases (data, below) scored in one batch:

- ``invariance``: two reviews that differ only in actor and film names get (nearly) the same probability.
  Half the names are common in IMDB reviews (so in the vocabulary, with whatever sentiment the training data
  attached to them), half are made up (out of vocabulary).
- ``direction``: adding a strong negative cue (a negation, or "awful") to a review lowers its probability.
- ``minimum_functionality``: short, plain, clearly positive or negative reviews get the right label.

A model is anything with ``predict(texts) -> positive-class probabilities``; :func:`pyfunc_predictor` adapts
the MLflow pyfunc that seqflow serves (a ``text`` column in, a ``probability`` column out). What counts as a
pass, and the pass rates that tests/model require, are in :class:`seqflow.sentiment.config.BehaviourConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from seqflow.sentiment.config import BehaviourConfig
from seqflow.core.errors import SeqflowError

INVARIANCE = "invariance"
DIRECTION = "direction"
MINIMUM_FUNCTIONALITY = "minimum_functionality"
CHECK_TYPES: tuple[str, ...] = (INVARIANCE, DIRECTION, MINIMUM_FUNCTIONALITY)

# Texts -> positive-class probabilities, one per text.
Predictor = Callable[[Sequence[str]], np.ndarray]

# --- invariance: templates filled with one set of names, then with another ------------------------------------
INVARIANCE_TEMPLATES: tuple[str, ...] = (
    "{actor} is wonderful in {film}; I laughed and cried and would watch it again.",
    "{film} is a dull, lifeless mess and {actor} looks bored in every scene.",
    "I saw {film} last night. {actor} plays a teacher who moves to a small town.",
    "{actor} gives the best performance of the year in {film}.",
    "Even {actor} cannot save {film} from its terrible script.",
    "{film} was fine and {actor} was fine. Nothing more to say.",
)
# (actor, film). The first set is the reference; each template is compared under it and under every other set.
INVARIANCE_NAMES: tuple[tuple[str, str], ...] = (
    ("Tom Hanks", "Casablanca"),
    # Common in IMDB reviews, so in any sizeable vocabulary.
    ("Meryl Streep", "Titanic"),
    ("Robert De Niro", "Psycho"),
    # Made up: out of vocabulary everywhere.
    ("Dorota Kwiatkowska", "The Glass Orchard"),
    ("Anselm Varga", "Midnight at Vireo Lake"),
)

# --- direction: (review, the same review with a strong negative cue added) -----------------------------------
DIRECTION_PAIRS: tuple[tuple[str, str], ...] = (
    ("The acting was good.", "The acting was awful."),
    ("A good film with a fine cast.", "Not a good film, and not a fine cast."),
    ("I enjoyed this movie.", "I never enjoyed this movie."),
    ("The story held my attention.", "The story held my attention, but the ending was awful."),
    ("A charming comedy with a few good jokes.", "A charming comedy with a few good jokes. Awful, awful direction."),
    ("The music is lovely and the photography is beautiful.", "The music is lovely and the photography is beautiful, but the film is awful."),
    ("I would recommend it to my friends.", "I would not recommend it to my friends."),
    ("It is worth watching.", "It is not worth watching."),
    ("The plot was simple but the characters were likeable.", "The plot was awful and the characters were not likeable."),
    ("Everyone in my family liked it.", "Everyone in my family liked it except me: I thought it was awful."),
    ("An interesting documentary about a small town.", "An awful documentary about a small town."),
    ("The sequel is as good as the first film.", "The sequel is not as good as the first film. Awful."),
)

# --- minimum functionality: (short plain review, label) -------------------------------------------------------
MINIMUM_FUNCTIONALITY_CASES: tuple[tuple[str, int], ...] = (
    ("A wonderful film. I loved it.", 1),
    ("Great acting and a beautiful story.", 1),
    ("One of the best movies I have ever seen.", 1),
    ("Brilliant, funny and moving. Highly recommended.", 1),
    ("I really enjoyed this film.", 1),
    ("An excellent movie with a superb cast.", 1),
    ("Beautiful, touching and well made.", 1),
    ("A great film, worth watching twice.", 1),
    ("A terrible film. I hated it.", 0),
    ("Bad acting and a boring story.", 0),
    ("One of the worst movies I have ever seen.", 0),
    ("Awful, dull and far too long. Avoid it.", 0),
    ("I really disliked this film.", 0),
    ("A waste of time with a terrible cast.", 0),
    ("Boring, stupid and badly made.", 0),
    ("A poor film, not worth watching.", 0),
)


@dataclass(frozen=True)
class CheckResult:
    """One case of one check type: the texts scored, their probabilities, and whether the model passed."""

    check: str
    texts: tuple[str, ...]
    probabilities: tuple[float, ...]
    passed: bool
    # What the case expected, in words (shown for failures).
    expectation: str


def invariance_pairs() -> list[tuple[str, str]]:
    """``(reference review, the same review with other names)`` for every template and every other name set."""
    (reference_actor, reference_film), *others = INVARIANCE_NAMES
    return [
        (template.format(actor=reference_actor, film=reference_film), template.format(actor=actor, film=film))
        for template in INVARIANCE_TEMPLATES
        for actor, film in others
    ]


def _score(predict: Predictor, texts: list[str]) -> np.ndarray:
    probabilities = np.asarray(predict(texts), dtype=np.float64).reshape(-1)
    if probabilities.shape[0] != len(texts):
        raise SeqflowError(f"behavioural checks: the model returned {probabilities.shape[0]} probabilities for {len(texts)} texts")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
        raise SeqflowError("behavioural checks: the model returned values outside [0, 1]; expected probabilities")
    return probabilities


def run_behaviour_checks(predict: Predictor, config: BehaviourConfig) -> list[CheckResult]:
    """Score every case of every check type in one batch and judge each one by ``config``."""
    pairs = invariance_pairs()
    texts = [text for pair in pairs for text in pair]
    texts += [text for pair in DIRECTION_PAIRS for text in pair]
    texts += [text for text, _ in MINIMUM_FUNCTIONALITY_CASES]
    # Each distinct text once (the invariance reference reviews repeat).
    unique_texts = list(dict.fromkeys(texts))
    probability_of = dict(zip(unique_texts, _score(predict, unique_texts)))

    results: list[CheckResult] = []
    for reference, swapped in pairs:
        first, second = probability_of[reference], probability_of[swapped]
        results.append(
            CheckResult(
                INVARIANCE, (reference, swapped), (first, second), abs(first - second) <= config.invariance_tolerance,
                f"|difference| <= {config.invariance_tolerance}",
            )
        )  # fmt: skip
    for base, negative in DIRECTION_PAIRS:
        before, after = probability_of[base], probability_of[negative]
        results.append(
            CheckResult(
                DIRECTION, (base, negative), (before, after), after < before - config.direction_margin,
                f"second < first - {config.direction_margin}",
            )
        )  # fmt: skip
    for text, label in MINIMUM_FUNCTIONALITY_CASES:
        probability = probability_of[text]
        predicted = int(probability >= config.decision_threshold)
        results.append(
            CheckResult(
                MINIMUM_FUNCTIONALITY, (text,), (probability,), predicted == label,
                f"{'positive' if label else 'negative'} (threshold {config.decision_threshold})",
            )
        )  # fmt: skip
    return results


def pass_rates(results: Sequence[CheckResult]) -> dict[str, float]:
    """Share of passed cases per check type, for the check types present in ``results``."""
    rates: dict[str, float] = {}
    for check in CHECK_TYPES:
        outcomes = [result.passed for result in results if result.check == check]
        if outcomes:
            rates[check] = sum(outcomes) / len(outcomes)
    return rates


def minimum_pass_rate(check: str, config: BehaviourConfig) -> float:
    """The pass rate a model must reach on ``check`` (from config)."""
    floors = {
        INVARIANCE: config.min_invariance_pass_rate,
        DIRECTION: config.min_direction_pass_rate,
        MINIMUM_FUNCTIONALITY: config.min_functionality_pass_rate,
    }
    return floors[check]


def metric_name(check: str) -> str:
    """The MLflow metric of a check type's pass rate, e.g. ``behaviour_direction_pass_rate``."""
    return f"behaviour_{check}_pass_rate"


def describe_failures(results: Sequence[CheckResult], check: str | None = None) -> str:
    """One line per failed case (of ``check``, or of all types): texts, probabilities and what was expected."""
    lines = [
        f"{result.check}: "
        + " -> ".join(f"{text!r} p={probability:.3f}" for text, probability in zip(result.texts, result.probabilities))
        + f" (expected {result.expectation})"
        for result in results
        if not result.passed and (check is None or result.check == check)
    ]
    return "\n".join(lines)


def pyfunc_predictor(model) -> Predictor:  # noqa: ANN001 - an mlflow PyFuncModel serving seqflow's schema
    """Adapt the served pyfunc (``text`` column in, ``probability`` column out) to a :data:`Predictor`."""
    import pandas as pd

    from seqflow.sentiment.serving import TEXT_COLUMN

    def predict(texts: Sequence[str]) -> np.ndarray:
        return model.predict(pd.DataFrame({TEXT_COLUMN: list(texts)}))["probability"].to_numpy(dtype=np.float64)

    return predict
