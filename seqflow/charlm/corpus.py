"""One corpus, one registered model: its name, what may be compared with its champion, and the n-gram bar.

Models of different corpora (English plays, Chinese lyrics) never compete: each corpus registers under a name
derived from its source unless ``--model-name`` (or SEQFLOW_CHARLM_MODEL_NAME) says otherwise, a champion whose
vocabulary cannot read this execution's validation text is not scored on it, and no network is promoted that does
not beat a count-based n-gram model of the same characters.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath

import numpy as np

from seqflow.charlm.baselines import BaselineScores, baseline_scores
from seqflow.charlm.sources import parse_char_source_spec
from seqflow.charlm.text import UNKNOWN_ID, CharEncodedData, load_char_ids
from seqflow.core.errors import ConfigError, SeqflowError
from seqflow.core.promotion import PromotionDecision
from seqflow.core.settings import TrackingSettings

MODEL_NAME_PREFIX = "seqflow-charlm-"
# Registered model names stay short and plain: MLflow URIs (models:/NAME@champion) and shells handle them as is.
_NAME_UNSAFE = re.compile(r"[^a-z0-9._-]+")
MAX_NAME_STEM = 60
# The gate's name, as its setting, so a refusal says what to change.
NGRAM_GATE = "require_beating_ngram"
# A champion that reads this many more validation characters as unknown than the challenger's own vocabulary
# does was trained on another alphabet: its perplexity on this text measures the mismatch, not the model.
CHAMPION_UNKNOWN_SLACK = 0.01


def source_stem(source: str) -> str:
    """The part of a source spec that names the corpus: a file's stem, a TFDS name, the embedded plays."""
    try:
        kind, argument = parse_char_source_spec(source)
    except SeqflowError:
        kind, argument = "text", source
    if kind == "text":
        return PurePath(argument).stem or argument
    return argument.replace(",", "-") if argument else kind


def charlm_model_name_for(source: str) -> str:
    """``seqflow-charlm-<stem of the source>``, lower-case ASCII; a stem with no such characters (a Chinese
    file name) is named by a short digest of itself so that two such corpora still get two names."""
    stem = source_stem(source)
    safe = _NAME_UNSAFE.sub("-", stem.lower()).strip("-._")[:MAX_NAME_STEM].strip("-._")
    if not safe:
        safe = "text-" + hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return MODEL_NAME_PREFIX + safe


def check_model_name(name: str) -> str:
    """``name`` if MLflow and a ``models:/NAME@alias`` URI can use it, else a ConfigError naming what to change."""
    if not name or name != name.strip() or any(char in name for char in "/@:%") or len(name) > 200:
        raise ConfigError(
            f"--model-name {name!r} cannot name a registered model: use letters, digits, '-', '_' or '.' "
            "(no '/', '@', ':', '%' or surrounding spaces), e.g. seqflow-charlm-lyrics"
        )
    return name


def charlm_model_name(explicit: str | None, environment: str | None, source: str) -> str:
    """``--model-name``, else SEQFLOW_CHARLM_MODEL_NAME, else the name derived from the corpus's source."""
    if explicit is not None:
        return check_model_name(explicit)
    return environment or charlm_model_name_for(source)


def corpus_tracking_settings(settings: TrackingSettings, model_name: str | None, source: str) -> TrackingSettings:
    """The charlm tracking settings (:meth:`TrackingSettings.for_charlm`) with this corpus's registered model."""
    name = charlm_model_name(model_name, settings.charlm_model_name, source)
    return settings.model_copy(update={"charlm_model_name": name}).for_charlm()


def champion_vocabulary_problem(champion_vocabulary: list[str], validation_text: str, own_unknown_share: float) -> str | None:
    """Why the champion's vocabulary cannot be compared on ``validation_text``, or None.

    The champion reads characters outside its vocabulary as its unknown id; when it reads clearly more of this
    text that way than the challenger does (``own_unknown_share``), the two were trained on different alphabets.
    """
    if not validation_text:
        return None
    known = set(champion_vocabulary) - {champion_vocabulary[UNKNOWN_ID]}
    outside = np.fromiter((char not in known for char in validation_text), dtype=bool, count=len(validation_text))
    share = float(outside.mean())
    if share <= own_unknown_share + CHAMPION_UNKNOWN_SLACK:
        return None
    # The characters to show: not the unknown marker, which stands for those the challenger lacks as well.
    marker = champion_vocabulary[UNKNOWN_ID]
    missing = "".join(dict.fromkeys(char for char, out in zip(validation_text, outside) if out and char != marker))
    return (
        f"{share:.1%} of this validation text is outside the champion's vocabulary (this execution's own: "
        f"{own_unknown_share:.1%}; e.g. {missing[:12]!r}): it was trained on another corpus or alphabet"
    )


def char_baselines(encoded: CharEncodedData, validation_streams: int) -> BaselineScores:
    """The unigram and n-gram baselines of this execution's ids, scored as its networks are."""
    return baseline_scores(
        load_char_ids(encoded, "train"), load_char_ids(encoded, "validation"), encoded.vocab_size, validation_streams
    )


def ngram_gate(
    challenger_version: str, challenger_perplexity: float, baselines: BaselineScores, mixture_min_gain: float | None = None,
) -> PromotionDecision | None:
    """A refusal when the network does not beat the n-gram baseline's validation perplexity, else None. For a
    mixture model (``mixture_min_gain`` given) the bar is that share below the n-gram's: a mixture matches the
    n-gram at λ=0, so only a real gain says the network adds something."""
    if mixture_min_gain is None:
        if challenger_perplexity < baselines.ngram_perplexity:
            return None
        reason = (
            f"validation perplexity {challenger_perplexity:.3f} does not beat the {baselines.ngram_order}-gram "
            f"Kneser-Ney baseline {baselines.ngram_perplexity:.3f} (unigram {baselines.unigram_perplexity:.3f}) on the "
            "same validation characters: train longer or larger (--set training.max_training_minutes=...), or "
            "--set promotion.require_beating_ngram=false"
        )
    else:
        bar = baselines.ngram_perplexity * (1.0 - mixture_min_gain)
        if challenger_perplexity <= bar:
            return None
        gain = 1.0 - challenger_perplexity / baselines.ngram_perplexity
        reason = (
            f"the network adds too little to the n-gram: the mixture's validation perplexity {challenger_perplexity:.3f} "
            f"is {gain:.1%} below the {baselines.ngram_order}-gram Kneser-Ney baseline {baselines.ngram_perplexity:.3f}, "
            f"under the {mixture_min_gain:.1%} required: train longer or larger (--set training.max_training_minutes=...), "
            "or --set promotion.mixture_min_gain=0 (or promotion.require_beating_ngram=false)"
        )
    return PromotionDecision(False, reason, challenger_version, challenger_perplexity, refused_by=NGRAM_GATE)
