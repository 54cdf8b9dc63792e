"""What ``seqflow tune`` searches for the sentiment models: a default space per architecture, how a trial's
parameters become a config, and a trial's fit, through the same training step as ``seqflow run``
(:func:`seqflow.sentiment.train.train_classifier`) on the training and validation splits only."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from seqflow.core.fitting import EpochCallback
from seqflow.core.search_space import Choices, FloatRange
from seqflow.sentiment.config import ALL_ARCHITECTURES, ArchitectureSettings, PipelineConfig, with_overrides

# Sections a space may search: the tokenisation and the training. data.* and seed are fixed: they decide the
# splits, and every trial must be scored on the same validation split.
SEARCH_SECTIONS = ("training", "tokenisation")
# Fields that may differ per architecture: set as training.per_architecture.ARCH.FIELD, so they win over the base
# profile's own per-architecture overrides for the tuned architecture.
_PER_ARCHITECTURE_FIELDS = frozenset(f.name for f in dataclasses.fields(ArchitectureSettings))

_LEARNING_RATE = FloatRange(type="float", low=3e-4, high=1e-2, log=True)
_DROPOUT = FloatRange(type="float", low=0.0, high=0.5)
_EMBEDDING = Choices(type="categorical", choices=[32, 64, 128])
_LENGTH = Choices(type="categorical", choices=[150, 200, 300])
_VOCABULARY = Choices(type="categorical", choices=[10_000, 20_000])
_BUCKETS = Choices(type="categorical", choices=[0, 200_000, 1_000_000])
# Row-sparse Adam: with a million bucket rows, dense Adam updates every row every step (the `best` profile's note).
_OPTIMIZER = Choices(type="categorical", choices=["adam", "lazy_adam"])
_RECURRENT = {
    "training.learning_rate": _LEARNING_RATE,
    "training.dropout": _DROPOUT,
    "training.spatial_dropout": FloatRange(type="float", low=0.0, high=0.4),
    "training.embedding_dim": _EMBEDDING,
    "training.rnn_units": Choices(type="categorical", choices=[32, 64, 128]),
    "tokenisation.max_length": _LENGTH,
}
# What matters for each model, from the hand-tuning recorded in the `best` profile's comments: the rate, the
# regularisation, the width, the sequence length and vocabulary, and for the bag-of-n-gram models the buckets.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "embedding_pool": {
        "training.learning_rate": _LEARNING_RATE,
        "training.dropout": _DROPOUT,
        "training.embedding_dim": _EMBEDDING,
        "training.bigram_buckets": _BUCKETS,
        "training.optimizer": _OPTIMIZER,
        "tokenisation.vocab_size": _VOCABULARY,
        "tokenisation.max_length": _LENGTH,
    },
    "nbsvm": {
        "training.learning_rate": _LEARNING_RATE,
        "training.bigram_buckets": Choices(type="categorical", choices=[200_000, 1_000_000]),
        "training.max_ngram": Choices(type="categorical", choices=[2, 3]),
        "training.optimizer": _OPTIMIZER,
        "tokenisation.vocab_size": _VOCABULARY,
        "tokenisation.max_length": _LENGTH,
    },
    **{architecture: dict(_RECURRENT) for architecture in ALL_ARCHITECTURES if architecture not in ("embedding_pool", "nbsvm")},
}


def trial_overrides(architecture: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters as config overrides: training fields per architecture, the rest as they are; the
    run trains only ``architecture``."""
    overrides: dict[str, Any] = {"training.architectures": (architecture,)}
    for key, value in params.items():
        section, _, name = key.partition(".")
        if section == "training" and name in _PER_ARCHITECTURE_FIELDS:
            overrides[f"training.per_architecture.{architecture}.{name}"] = value
        else:
            overrides[key] = value
    return overrides


def trial_config(base: PipelineConfig, architecture: str, params: Mapping[str, Any]) -> PipelineConfig:
    """The config one trial trains with: no per-epoch checkpoint (a lost trial is asked again, not resumed)."""
    return with_overrides(base, {**trial_overrides(architecture, params), "training.checkpoint": False})


def validation_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The training and validation arrays only: a trial never sees the test split."""
    return {name: array for name, array in arrays.items() if not name.endswith("_test")}


def fit_trial(config: PipelineConfig, architecture: str, tokenised: Any, on_epoch_end: EpochCallback,
              output_dir: Path) -> tuple[Any, Path]:
    """Fit one trial's model with the normal training step; returns its outcome and the folder it wrote."""
    from seqflow.sentiment.tokenise import load_arrays, load_vocabulary
    from seqflow.sentiment.train import train_classifier

    outcome = train_classifier(
        architecture, validation_arrays(load_arrays(tokenised)), tokenised.vocab_size, config.training, config.seed,
        output_dir, on_epoch_end=on_epoch_end, vocabulary=load_vocabulary(tokenised.vocabulary_path),
    )
    return outcome, output_dir

