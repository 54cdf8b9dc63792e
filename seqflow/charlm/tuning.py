"""What ``seqflow charlm tune`` searches for the character models: a default space per cell type, how a trial's
parameters become a config, and a trial's fit, through the same training step as ``seqflow charlm run``
(:func:`seqflow.charlm.train.train_char_model`). The objective is the carried-state validation loss in nats per
character, on the validation blocks only (charlm has no test split; the training text is all a trial reads
besides them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from seqflow.charlm.config import ALL_CHAR_ARCHITECTURES, CharLMConfig, with_charlm_overrides
from seqflow.core.fitting import EpochCallback
from seqflow.core.search_space import Choices, FloatRange

# Only the training section: data.* and seed decide the validation blocks every trial is scored on, and the
# encoding (data.min_char_count) with them; sampling only decides what is logged.
SEARCH_SECTIONS = ("training",)

# What moves a character model's validation loss (the `quick` and `shakespeare-lstm` profiles' tries, and
# Karpathy's char-rnn notes): the rate, the width, the regularisation, the window (how far back gradients reach)
# and the depth. The embedding matters little for a small alphabet. Widths stop at 512: a wider LSTM costs
# minutes per epoch on 2 cores.
DEFAULT_SPACE: dict[str, Any] = {
    "training.learning_rate": FloatRange(type="float", low=5e-4, high=1e-2, log=True),
    "training.rnn_units": Choices(type="categorical", choices=[128, 256, 512]),
    "training.embedding_dim": Choices(type="categorical", choices=[32, 64, 128]),
    "training.dropout": FloatRange(type="float", low=0.0, high=0.4),
    "training.seq_length": Choices(type="categorical", choices=[50, 100, 150]),
    "training.layers": Choices(type="categorical", choices=[1, 2]),
}
DEFAULT_SPACES: dict[str, dict[str, Any]] = {architecture: dict(DEFAULT_SPACE) for architecture in ALL_CHAR_ARCHITECTURES}


def trial_overrides(architecture: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters as config overrides (charlm has no per-architecture settings); the run trains only
    ``architecture``."""
    return {"training.architectures": (architecture,), **params}


def trial_config(base: CharLMConfig, architecture: str, params: Mapping[str, Any]) -> CharLMConfig:
    """The config one trial trains with: no per-epoch checkpoint (a lost trial is asked again, not resumed)."""
    return with_charlm_overrides(base, {**trial_overrides(architecture, params), "training.checkpoint": False})


def fit_trial(config: CharLMConfig, architecture: str, encoded: Any, on_epoch_end: EpochCallback,
              output_dir: Path) -> tuple[Any, Path]:
    """Fit one trial's model with the normal training step (no samples: they are for runs people read)."""
    from seqflow.charlm.text import load_char_ids, load_char_vocabulary
    from seqflow.charlm.train import train_char_model

    outcome = train_char_model(
        architecture, load_char_ids(encoded, "train"), load_char_ids(encoded, "validation"),
        load_char_vocabulary(encoded.vocabulary_path), config.training, config.sampling, "", config.seed, output_dir,
        on_epoch_end=on_epoch_end,
    )
    return outcome, output_dir

