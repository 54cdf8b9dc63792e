"""The default charlm profile, sized from the text it is given (``seqflow charlm run`` without ``--profile``).

Named profiles are fixed; the ``auto`` profile is a starting point whose model and training settings are
chosen here from the corpus's length and alphabet, then SEQFLOW_* settings and ``--set`` override any of them.
Why each choice (seeds 003/004 and the runs in issue 22):

- LSTM, Adam 2e-3, global-norm clipping 1.0: seed 003 needed hard clipping to train a SimpleRNN at all, and the
  LSTM is what reached 1.40 nats/char on Shakespeare here; seed 004's stateful SimpleRNN(1024) is slower per
  character for no gain on 2 cores.
- Units grow with the text (256 below 300k characters, 384 below 800k, 512 above): the shakespeare-lstm profile
  (512) fits 1.1M characters; on 60k characters a network that size memorises the training text (seed 003's
  training perplexity of ~1.07 on lyrics is that) long before validation improves.
- Embedding 64 for alphabetic texts, 128 for large (CJK) alphabets: a Chinese character is closer to a morpheme
  than to a letter, and thousands of them do not fit in 64 dimensions.
- Dropout on the recurrent layer's input, more for less text (0.3 below 300k, 0.2 above): the small corpus is
  where the network overfits within a few passes, but without dropout 512 units overfit tiny Shakespeare too
  (training loss 1.27 against validation 1.54 after 10 epochs). From 300k characters each epoch's windows also
  start at another seeded offset (training.shift_windows).
- Windows of 35 characters for large alphabets (seed 003's choice for lyrics, whose lines are ~10 characters),
  50 otherwise (shakespeare-lstm); batches of 32 below 300k characters so a small text still gives enough
  updates per pass, 64 above.
- Training to a time budget (18 minutes: the issue's goal is 20 for the whole run) with early stopping on
  validation (patience 3; 5 for small texts, whose validation loss is noisier), up to 500 epochs: a 60k-character
  corpus needs dozens of passes, a million-character one a handful; a fixed epoch count fits neither.
- Validation blocks of about 1/50 of the text (1k to 10k characters), so even a small corpus holds out several
  separate passages; rare characters folded into the unknown id for large alphabets (data.min_char_count).
- The network interpolated with the Kneser-Ney n-gram (training.ngram_interpolation): on 63k characters of
  Chinese reviews the network alone (perplexity 147.6) lost to the 5-gram (111.2) and the mixture beat both
  (101.2, λ = 0.34); on tiny Shakespeare's standard split an 18-minute network (1.529 nats/char) and the 6-gram
  (1.564) mixed to 1.451 (λ = 0.56).
- Ceiling on validation perplexity: the alphabet size (a uniform guess scores exactly that); the real bar is the
  n-gram baseline gate (promotion.require_beating_ngram).
- At most 2M characters: 18 minutes on 2 cores read about that many characters 4-5 times with 512 units.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from seqflow.charlm.sources import load_char_source
from seqflow.charlm.text import LARGE_ALPHABET

logger = logging.getLogger(__name__)

AUTO_PROFILE = "auto"
MAX_AUTO_CHARS = 2_000_000
SMALL_TEXT, MEDIUM_TEXT = 300_000, 800_000
TRAINING_MINUTES = 18.0


def sized_settings(length: int, alphabet: int) -> dict[str, Any]:
    """The ``auto`` profile's settings for a text of ``length`` characters and ``alphabet`` distinct ones."""
    large_alphabet = alphabet > LARGE_ALPHABET
    used = min(length, MAX_AUTO_CHARS)
    small, medium = used < SMALL_TEXT, used < MEDIUM_TEXT
    settings: dict[str, Any] = {
        "data.block_chars": int(min(10_000, max(1_000, used // 50))),
        "training.architectures": ("char_lstm",),
        "training.layers": 1,
        "training.rnn_units": 256 if small else 384 if medium else 512,
        "training.embedding_dim": 128 if large_alphabet else 64,
        "training.dropout": 0.3 if small else 0.2,
        "training.seq_length": 35 if large_alphabet else 50,
        "training.batch_size": 32 if small else 64,
        "training.epochs": 500,
        "training.optimizer": "adam",
        "training.learning_rate": 2e-3,
        "training.clipnorm": 1.0,
        "training.stateful": False,
        # Measured together with dropout 0.2 and the mixture on tiny Shakespeare (BENCHMARKS.md). On 63k
        # characters of Chinese it helped the network alone a little (144.2 against 147.6), not measured with
        # the mixture there: off below 300k characters until it is.
        "training.shift_windows": not small,
        "training.early_stopping_patience": 5 if small else 3,
        # Measured to pay on 63k characters of Chinese and on the 1.1M of tiny Shakespeare (BENCHMARKS.md).
        "training.ngram_interpolation": True,
        "training.max_training_minutes": TRAINING_MINUTES,
        "sampling.every_epochs": 5,
        "promotion.max_val_perplexity": float(max(alphabet, 2)),
    }
    if length > MAX_AUTO_CHARS:
        settings["data.max_chars"] = MAX_AUTO_CHARS
    return settings


def _given(key: str, given: Mapping[str, Any]) -> bool:
    """Whether ``key`` (``section.field``) was set in ``given``, which may also name it by its field alone."""
    return key in given or key.rsplit(".", 1)[-1] in given


def resolve_auto_charlm_config(environment: Mapping[str, Any] | None, explicit: Mapping[str, Any]):  # noqa: ANN201
    """The ``auto`` profile, sized from its text; settings from the environment or the command line win."""
    from seqflow.charlm.config import resolve_charlm_config

    environment = dict(environment or {})
    unsized = resolve_charlm_config(AUTO_PROFILE, environment, explicit)
    # Sized from the text as the run will load it, but before a sized max_chars cuts it.
    text = load_char_source(unsized.data).text
    sized = sized_settings(len(text), len(set(text)))
    chosen = {key: value for key, value in sized.items() if not _given(key, environment) and not _given(key, explicit)}
    logger.info("auto profile for %s characters, %d distinct: %s", f"{len(text):,}", len(set(text)), chosen)
    return resolve_charlm_config(AUTO_PROFILE, environment, {**chosen, **explicit})


def resolve_charlm_run_config(profile: str, environment: Mapping[str, Any] | None, explicit: Mapping[str, Any]):  # noqa: ANN201
    """``profile`` resolved as ``seqflow charlm run`` does: ``auto`` sized from its text, any other as it is."""
    from seqflow.charlm.config import resolve_charlm_config

    if profile == AUTO_PROFILE:
        return resolve_auto_charlm_config(environment, explicit)
    return resolve_charlm_config(profile, environment, explicit)
