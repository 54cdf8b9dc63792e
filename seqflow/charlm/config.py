"""The character-model pipeline's settings (``seqflow charlm run``) and its profiles.

One frozen :class:`CharLMConfig` of sections, each field with its bounds; built like the sentiment config: the
profile, then ``SEQFLOW_*`` values from mlflow.env / the environment, then the CLI (later wins).
"""

from __future__ import annotations

import typing
from dataclasses import field
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from seqflow.core.config import Allowed, DropRate, RunSettings, Seed, Share, config_section, raise_problems, revalidated
from seqflow.core.overrides import ProfileRegistry, replace_settings

CharArchitecture = Literal["char_simple_rnn", "char_gru", "char_lstm"]
ALL_CHAR_ARCHITECTURES: tuple[str, ...] = typing.get_args(CharArchitecture)
# Tasks ``seqflow charlm rerun`` can run again on an earlier execution's outputs (validate: the text contract).
CHARLM_RERUN_TASKS: tuple[str, ...] = ("load", "validate", "encode", "train", "evaluate", "register")

WHAT = "charlm configuration"


@config_section(name="data", what=WHAT)
class CharDataConfig:
    """Where the text comes from and how it is cut into train and validation."""

    # Source spec: embedded[:PLAY,PLAY...] | tfds:tiny_shakespeare | text:PATH
    source: str = "embedded"
    # Keep only the first this many characters of the source (before splitting); None keeps all. A run needs
    # two blocks (CharLMConfig checks it against block_chars).
    max_chars: Annotated[int, Field(ge=2)] | None = None
    # The text is cut into contiguous blocks of this many characters; a seeded draw sends whole blocks to
    # validation, so validation text is continuous prose the model has not read, not scattered characters.
    block_chars: Annotated[int, Field(ge=2)] = 10_000
    # Share of blocks held out for validation (model selection, promotion and the benchmark's number).
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1
    # "blocks": the seeded draw of blocks above; "tail": the last validation_fraction of the text, the split
    # published tiny_shakespeare numbers use (so a benchmark compares with them).
    validation_split: Literal["blocks", "tail"] = "blocks"
    # TFDS data_dir (where tiny_shakespeare is or will be prepared).
    tfds_data_dir: str | None = None
    # A training character seen fewer times than this gets no id of its own: it is read (in training,
    # validation and prefixes) as the unknown id, which so learns the probability of "a rare or new character".
    # None: 2 for alphabets over 300 characters (CJK), 1 (keep every character) otherwise; see
    # seqflow.charlm.text.resolve_min_char_count.
    min_char_count: Annotated[int, Field(ge=1)] | None = None


@config_section(name="contracts", what=WHAT)
class CharContractConfig:
    """Bounds of the character-text contract."""

    # Each split needs at least this many characters (a 1-epoch window of training data needs a few thousand).
    min_chars: PositiveInt = 1_000
    # Distinct characters in training text; a binary file or a mis-decoded text explodes this number.
    max_vocab_size: PositiveInt = 5_000
    # Share of validation characters never seen in training. They are read as the unknown id (priced by the rare
    # characters folded into it), so a few percent is ordinary in a large alphabet (2.7% in 60k characters of
    # Chinese lyrics); far more means another vocabulary in the same script (traditional vs simplified Chinese).
    max_unseen_share: Share = 0.1
    # Share of validation letters in a script (Latin, CJK, Greek, Cyrillic, Hangul, ...) that no training letter
    # is written in: validation text in another language or alphabet.
    max_foreign_script_share: Share = 0.01
    # Share of characters that begin a mojibake pair (UTF-8 bytes decoded as Latin-1/cp1252, e.g. "Ã©" for "é",
    # "å¤" for a Chinese character) or are U+FFFD left by a lossy decoding: a text in the wrong encoding.
    max_mojibake_share: Share = 0.001
    # How many failing examples an error message shows.
    examples_in_message: NonNegativeInt = 5


@config_section(name="training", what=WHAT)
class CharTrainingConfig:
    """Which character models to train and how; read by models/charlm.py builders and the training step."""

    architectures: tuple[str, ...] = ("char_lstm",)
    # Recurrent layers per model.
    layers: Annotated[int, Field(ge=1, le=2), Allowed("1 or 2")] = 1
    embedding_dim: PositiveInt = 64
    rnn_units: PositiveInt = 256
    dropout: DropRate = 0.0
    # Characters per training window; targets are the same window shifted by one character.
    seq_length: PositiveInt = 100
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 10
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: Annotated[float, Field(gt=0)] = 2e-3
    # Gradient clipping by global norm (seed 003 clipped hard to tame SimpleRNN); None disables it.
    clipnorm: Annotated[float, Field(gt=0)] | None = 1.0
    # Stateful: batch row j of step i+1 continues the text of row j of step i, and the RNN state carries over
    # (seed 004-D). Stateless: shuffled windows, each starting from a zero state.
    stateful: bool = False
    # Stateless only: move where the windows start by a seeded random 0..seq_length-1 characters every epoch,
    # so that each pass cuts the text at other places (on a small text the fixed cut is memorised with it).
    shift_windows: bool = False
    # Stop when validation loss has not improved for this many epochs (best weights kept); None: all epochs.
    early_stopping_patience: Annotated[int, Field(ge=1)] | None = 3
    # Wall-clock budget of the epoch loop: training stops before an epoch that would end past it (judged by the
    # longest epoch so far), best weights kept. For "the best model in N minutes on this machine"; the number of
    # epochs it allows depends on the machine, so runs with a budget are reproducible only on the same one.
    max_training_minutes: Annotated[float, Field(gt=0)] | None = None
    # Parallel streams and window length of the carried-state validation pass.
    validation_streams: PositiveInt = 16
    validation_window: PositiveInt = 500
    # Register, evaluate and generate from the mixture p = λ·p_network + (1-λ)·p_ngram instead of the network
    # alone, the n-gram being the baseline's Kneser-Ney model of the training text (seqflow.charlm.mixture). On a
    # small corpus the count model recalls the phrases the text repeats and the network generalises between them;
    # λ is chosen on the validation characters, like the best epoch. Off: the network alone, as before.
    ngram_interpolation: bool = False
    # Save the training state after every epoch (under artifacts_dir/checkpoints/) so that `seqflow charlm run`
    # after a crash resumes an interrupted training from its last completed epoch; deleted once it is done.
    checkpoint: bool = True

    @model_validator(mode="after")
    def _known_architectures(self) -> CharTrainingConfig:
        unknown = [a for a in self.architectures if a not in ALL_CHAR_ARCHITECTURES]
        if unknown or not self.architectures:
            raise_problems([
                f"architectures: unknown or no architectures {list(self.architectures)}; known: {list(ALL_CHAR_ARCHITECTURES)}"
            ])
        return self


@config_section(name="sampling", what=WHAT)
class CharSamplingConfig:
    """Samples generated while training (logged as text artifacts) and defaults of ``seqflow generate``."""

    # Generate samples after every this many epochs (and always after the last one).
    every_epochs: PositiveInt = 2
    # Prefix of the samples; empty: the first line of the validation text.
    prefix: str = ""
    length: PositiveInt = 300
    # 0 picks the most likely character every time.
    temperatures: tuple[Annotated[float, Field(ge=0)], ...] = (0.5, 1.0)
    seeds: tuple[Seed, ...] = (0,)


@config_section(name="promotion", what=WHAT)
class CharPromotionConfig:
    """Gates for moving the character model's champion alias (lower validation perplexity is better)."""

    # A challenger must beat the champion's validation perplexity (same validation data) by more than this;
    # negative lets a slightly worse one through. Perplexities have no upper end, so only finiteness bounds it.
    min_improvement: float = 0.0
    # A challenger above this validation perplexity is never promoted (a perplexity is at least 1).
    max_val_perplexity: Annotated[float, Field(ge=1)] = 10.0
    # A challenger must have a lower validation perplexity than the smoothed character n-gram baseline on the same
    # validation characters (seqflow.charlm.baselines): a network that does not beat counting has learned nothing.
    require_beating_ngram: bool = True
    # With training.ngram_interpolation: the mixture's validation perplexity must be at least this share below the
    # n-gram baseline's. A mixture matches the n-gram at λ=0 whatever the network, so "beats the n-gram" alone would
    # pass a network that adds nothing; 2% (0.02 nats/char) is a gain a useless network does not reach by chance.
    mixture_min_gain: Annotated[float, Field(ge=0, lt=1)] = 0.02
    # Refuse a challenger whose win over the champion is within noise: a paired bootstrap over validation windows
    # of the two models' mean loss on the same characters (seqflow.core.significance). Off: still run and recorded.
    require_significant: bool = False
    # The test's level: a win counts when its bootstrap p-value is below this (the interval is at 1 - level).
    # Above 0.5 it would not be a test; 0 would refuse every challenger.
    significance_level: Annotated[float, Field(gt=0, le=0.5)] = 0.05


@config_section(what=WHAT)
class CharLMConfig(RunSettings):
    """One ``seqflow charlm run``'s full configuration."""

    # Read by load-text (data), contracts-char-text (contracts), train-charlm (training, and sampling for the
    # samples it logs; sampling also gives `seqflow generate` its defaults) and register (promotion).
    data: CharDataConfig = field(default_factory=CharDataConfig)
    contracts: CharContractConfig = field(default_factory=CharContractConfig)
    training: CharTrainingConfig = field(default_factory=CharTrainingConfig)
    sampling: CharSamplingConfig = field(default_factory=CharSamplingConfig)
    promotion: CharPromotionConfig = field(default_factory=CharPromotionConfig)

    @model_validator(mode="after")
    def _text_fills_two_blocks(self) -> CharLMConfig:
        # Checked here, not in CharDataConfig: loading a capped text is fine with any block size; splitting it
        # into train and validation is what needs two blocks.
        data = self.data
        if data.max_chars is not None and data.max_chars < 2 * data.block_chars:
            raise_problems([
                f"data.max_chars ({data.max_chars}) must hold at least two blocks of data.block_chars ({data.block_chars})"
            ])
        return self


def with_charlm_overrides(config: CharLMConfig, overrides: Mapping[str, Any]) -> CharLMConfig:
    """A new charlm config with ``{"section.field" or "field": value}`` applied (values may be strings), checked."""
    return replace_settings(config, overrides)


CHARLM_PROFILES: dict[str, CharLMConfig] = {
    # The default of `seqflow charlm run`: model, training budget and validation blocks sized from the text it is
    # given (seqflow.charlm.sizing says what and why); these values are only what it starts from.
    "auto": CharLMConfig(profile="auto"),
    # Minutes on 2 cores: 300k characters of the embedded plays, a 1-layer LSTM(256), 5 epochs.
    "quick": CharLMConfig(
        profile="quick",
        data=CharDataConfig(max_chars=300_000),
        training=CharTrainingConfig(epochs=5),
        sampling=CharSamplingConfig(prefix="ROMEO:"),
    ),
    # The benchmark's model: ~1.1M characters (tiny_shakespeare's size), an LSTM(512) trained for at most 19
    # minutes (the target is 20 on CPU). Windows of 50 in batches of 64 give ~310 updates per epoch; a
    # 2-core machine does ~9k characters/s with this model, so about ten epochs fit.
    "shakespeare-lstm": CharLMConfig(
        profile="shakespeare-lstm",
        data=CharDataConfig(max_chars=1_115_394),
        training=CharTrainingConfig(
            layers=1, rnn_units=512, embedding_dim=64, dropout=0.0, epochs=30, batch_size=64, seq_length=50,
            learning_rate=2e-3, early_stopping_patience=3, max_training_minutes=19.0,
        ),
        sampling=CharSamplingConfig(prefix="ROMEO:", every_epochs=5),
        # The benchmark's champion moves only for a win beyond noise on the validation windows.
        promotion=CharPromotionConfig(max_val_perplexity=6.0, require_significant=True),
    ),
    # All three cell types side by side (1 layer, 256 units) on the quick data.
    "compare-cells": CharLMConfig(
        profile="compare-cells",
        data=CharDataConfig(max_chars=300_000),
        training=CharTrainingConfig(architectures=ALL_CHAR_ARCHITECTURES, epochs=5),
        sampling=CharSamplingConfig(prefix="ROMEO:"),
    ),
    # Seed 003 (Jay Chou lyrics, Chinese): SimpleRNN(256), windows of 35 characters, batch 32, 250 epochs, SGD
    # with learning rate 100 on the mean loss and the gradient's global norm clipped to 0.01 (so each step moves
    # the weights by at most 1.0); it reported training perplexity ~1.02. Point --source at a UTF-8 lyrics file.
    "seed-003-lyrics": CharLMConfig(
        profile="seed-003-lyrics",
        data=CharDataConfig(block_chars=2_000),
        contracts=CharContractConfig(min_chars=500, max_unseen_share=0.05),
        training=CharTrainingConfig(
            architectures=("char_simple_rnn",), rnn_units=256, embedding_dim=64, seq_length=35, batch_size=32,
            epochs=250, optimizer="sgd", learning_rate=100.0, clipnorm=0.01, stateful=False,
            early_stopping_patience=None,
        ),
        sampling=CharSamplingConfig(every_epochs=50, length=50),
        promotion=CharPromotionConfig(max_val_perplexity=1e9),
    ),
    # Seed 004-D (Shakespeare): Embedding(256) -> stateful SimpleRNN(1024), windows of 100, batch 64, Adam.
    "seed-004-shakespeare-rnn": CharLMConfig(
        profile="seed-004-shakespeare-rnn",
        data=CharDataConfig(max_chars=1_115_394),
        training=CharTrainingConfig(
            architectures=("char_simple_rnn",), embedding_dim=256, rnn_units=1024, seq_length=100, batch_size=64,
            epochs=100, learning_rate=1e-3, clipnorm=None, stateful=True, early_stopping_patience=None,
        ),
        sampling=CharSamplingConfig(prefix="ROMEO:", every_epochs=10),
    ),
}

DEFAULT_CHARLM_PROFILE = "auto"


REGISTRY = ProfileRegistry(CHARLM_PROFILES, with_charlm_overrides, "charlm profile")
# The names the rest of seqflow calls: get_charlm_profile(name), resolve_charlm_config(profile, environment, explicit).
get_charlm_profile = REGISTRY.get
resolve_charlm_config = REGISTRY.resolve


def validate_charlm_config(config: CharLMConfig) -> None:
    """Check ``config`` again from its values (every config is checked when it is built)."""
    revalidated(config)
