"""Text-to-ids layers shared by tokenisation and the exported, raw-text-serving model.

The same functions build the vectoriser that tokenises the training data and the one inside the exported
model, so serving sees exactly the ids training saw.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf

# Ids that TextVectorization reserves: 0 pads, 1 stands for every out-of-vocabulary word.
PADDING_ID = 0
OOV_ID = 1
OOV_TOKEN = "[UNK]"
# Name of the PadAndTruncate layer in a serving model: its output is exactly the ids the classifier sees, which
# the served pyfunc reads to refuse reviews that leave nothing but padding.
PAD_LAYER_NAME = "pad_and_truncate"


# Saved .keras files name their standardisation function by its registered name ("seqflow>NAME"), so each
# function keeps its name and behaviour for good: a model scores with the standardiser its vocabulary was built by.


@keras.saving.register_keras_serializable(package="seqflow")
def standardise_review(texts: tf.Tensor) -> tf.Tensor:
    """The standardiser of models saved before 2026-12-02 (ASCII only): kept so those versions score as trained.

    Lower-cases ASCII letters only and keeps RE2's ASCII ``\\w``, so it deletes every non-ASCII letter
    ("café" -> "caf"). New models use :func:`standardise_review_unicode`.
    """
    lowered = tf.strings.lower(texts)
    without_breaks = tf.strings.regex_replace(lowered, r"<br\s*/?>", " ")
    # Keep apostrophes so "don't" and "isn't" stay one token: negations matter for sentiment.
    return tf.strings.regex_replace(without_breaks, r"[^\w\s']", " ")


# Scripts written without spaces between words: each character becomes a token of its own (as BERT's basic
# tokeniser does), otherwise a whole Chinese or Japanese sentence would be one out-of-vocabulary "word".
_UNSPACED_SCRIPTS = r"([\p{Han}\p{Hiragana}\p{Katakana}])"


@keras.saving.register_keras_serializable(package="seqflow")
def standardise_review_unicode(texts: tf.Tensor) -> tf.Tensor:
    """Lower-case (UTF-8), turn ``<br />`` into spaces, keep letters, marks and digits of every script.

    Everything else except apostrophes (and ``_``, which the ASCII standardiser kept too) becomes a space;
    the typographic apostrophe becomes ``'`` so "don’t" and "don't" are one token.
    """
    lowered = tf.strings.lower(texts, encoding="utf-8")
    without_breaks = tf.strings.regex_replace(lowered, r"<br\s*/?>", " ")
    apostrophes = tf.strings.regex_replace(without_breaks, "\u2019", "'")
    spaced = tf.strings.regex_replace(apostrophes, _UNSPACED_SCRIPTS, r" \1 ")
    return tf.strings.regex_replace(spaced, r"[^\p{L}\p{M}\p{N}_']", " ")


@keras.saving.register_keras_serializable(package="seqflow")
class PadAndTruncate(keras.layers.Layer):
    """Ragged id sequences -> a dense ``(batch, max_length)`` tensor, padded and truncated on chosen sides."""

    def __init__(self, max_length: int, padding: str = "post", truncation: str = "post", **kwargs) -> None:
        super().__init__(**kwargs)
        if padding not in ("pre", "post") or truncation not in ("pre", "post"):
            raise ValueError(f"padding and truncation must be 'pre' or 'post', got {padding!r}, {truncation!r}")
        self.max_length = int(max_length)
        self.padding = padding
        self.truncation = truncation

    def call(self, ids: tf.RaggedTensor) -> tf.Tensor:
        # truncation="pre" drops the start of long reviews (keeps the ending), "post" drops the end.
        kept = ids[:, -self.max_length :] if self.truncation == "pre" else ids[:, : self.max_length]
        dense = kept.to_tensor(default_value=PADDING_ID, shape=[None, self.max_length])
        if self.padding == "post":
            return dense
        # Pre-padding: reverse each row's real ids in place, then the whole row, moving padding to the front.
        lengths = tf.cast(kept.row_lengths(), tf.int32)
        return tf.reverse(tf.reverse_sequence(dense, lengths, seq_axis=1, batch_axis=0), axis=[1])

    def compute_output_shape(self, input_shape):  # noqa: ANN001, ANN201 - Keras signature
        return (input_shape[0], self.max_length)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_length": self.max_length, "padding": self.padding, "truncation": self.truncation}


# Multiplier that packs an n-gram into one int64 key: a prime above any vocabulary size, so a * M + b is a
# distinct key for every (a, b); int64 keeps it exact for vocabularies up to ~1e12, and a trigram's
# (a * M + b) * M + c exact for vocabularies up to MAX_TRIGRAM_VOCABULARY.
BIGRAM_HASH_MULTIPLIER = 1_000_003
MAX_TRIGRAM_VOCABULARY = 9_000_000
# The key is then scrambled before taking it modulo the buckets: k -> ((k mod P) * A + C) mod P, a bijection on
# the residues of the Mersenne prime P (A * (k mod P) < 2**62 stays exact in int64). Without it, a bucket count
# near the packing multiplier aliases badly: 1M buckets saw only (3a + b) mod 1M, i.e. under 80,000 distinct
# buckets for a 20,000-word vocabulary (found 2026-12-01 when NB-SVM counted its features).
HASH_PRIME = 2_147_483_647
HASH_MIXER = 1_103_515_245
HASH_OFFSET = 12_345
# HashedNgrams' ways of turning keys into buckets: "mixed" (scrambled, above) for every new model; "packed" (key
# mod buckets) only so models saved before the scrambling still compute the ids they were trained on.
NGRAM_HASHINGS = ("mixed", "packed")
# Highest n-gram order HashedNgrams computes (bigrams and trigrams; NB-SVM on IMDB gains from trigrams too).
MAX_NGRAM_ORDER = 3


@keras.saving.register_keras_serializable(package="seqflow")
class HashedNgrams(keras.layers.Layer):
    """Padded ids ``(batch, n)`` -> the same ids followed by hashed n-gram ids of orders 2..``max_order``.

    fastText-style: each adjacent pair (a, b) becomes ``vocab_size + mix(a * M + b) mod buckets`` and, with
    ``max_order=3``, each triple (a, b, c) becomes ``vocab_size + mix((a * M + b) * M + c) mod buckets`` (``mix``:
    see HASH_PRIME; ``hashing="packed"`` leaves it out, for models saved before it): ids past the word ids, so one
    embedding table of ``vocab_size + buckets`` rows holds words and n-grams alike (bigrams and trigrams share the
    buckets). The output has ``n + (n - 1)`` ids for bigrams, ``+ (n - 2)`` with trigrams. An
    n-gram touching padding becomes the padding id, so masking and averaging ignore it. Because the hashing is a
    layer of the model, a saved model (and the raw-text serving model around it) computes the same ids as training.
    """

    def __init__(self, vocab_size: int, buckets: int, max_order: int = 2, hashing: str = "mixed", **kwargs) -> None:
        super().__init__(**kwargs)
        if vocab_size < 1 or buckets < 1:
            raise ValueError(f"vocab_size and buckets must be positive, got {vocab_size}, {buckets}")
        if hashing not in NGRAM_HASHINGS:
            raise ValueError(f"hashing must be one of {NGRAM_HASHINGS}, got {hashing!r}")
        if not 2 <= max_order <= MAX_NGRAM_ORDER:
            raise ValueError(f"max_order must be between 2 and {MAX_NGRAM_ORDER}, got {max_order}")
        if max_order >= 3 and vocab_size > MAX_TRIGRAM_VOCABULARY:
            raise ValueError(f"trigram hashing is exact for vocabularies up to {MAX_TRIGRAM_VOCABULARY:,}, got {vocab_size:,}")
        self.vocab_size = int(vocab_size)
        self.buckets = int(buckets)
        self.max_order = int(max_order)
        self.hashing = hashing

    @classmethod
    def from_config(cls, config: dict) -> HashedNgrams:
        # A config without "hashing" was saved before the scrambling existed: keep that model's own ids.
        return cls(**{"hashing": "packed", **config})

    def _bucketed(self, keys: tf.Tensor, touches_padding: tf.Tensor) -> tf.Tensor:
        if self.hashing == "mixed":
            keys = tf.math.floormod(tf.math.floormod(keys, HASH_PRIME) * HASH_MIXER + HASH_OFFSET, HASH_PRIME)
        hashed = tf.math.floormod(keys, self.buckets) + self.vocab_size
        return tf.where(touches_padding, tf.zeros_like(hashed), hashed)

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        wide = tf.cast(ids, tf.int64)
        is_padding = tf.equal(wide, PADDING_ID)
        pair_keys = wide[:, :-1] * BIGRAM_HASH_MULTIPLIER + wide[:, 1:]
        pair_padding = tf.logical_or(is_padding[:, :-1], is_padding[:, 1:])
        parts = [wide, self._bucketed(pair_keys, pair_padding)]
        if self.max_order >= 3:
            triple_keys = pair_keys[:, :-1] * BIGRAM_HASH_MULTIPLIER + wide[:, 2:]
            parts.append(self._bucketed(triple_keys, tf.logical_or(pair_padding[:, :-1], is_padding[:, 2:])))
        return tf.cast(tf.concat(parts, axis=1), ids.dtype)

    def compute_output_shape(self, input_shape):  # noqa: ANN001, ANN201 - Keras signature
        length = input_shape[1]
        if length is None:
            return (input_shape[0], None)
        return (input_shape[0], length + sum(max(length - order + 1, 0) for order in range(2, self.max_order + 1)))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "buckets": self.buckets,
            "max_order": self.max_order,
            "hashing": self.hashing,
        }


@keras.saving.register_keras_serializable(package="seqflow")
class DistinctIds(keras.layers.Layer):
    """Padded ids ``(batch, n)`` -> each row's distinct ids in ascending order, repeats replaced by padding.

    A binarised bag of words (and n-grams): a review that says "great" five times counts it once, as NB-SVM
    reads presence rather than counts. The shape stays ``(batch, n)``, so a saved model serves any length.
    """

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ordered = tf.sort(ids, axis=1)
        # An id equal to its left neighbour in sorted order is a repeat; the first of a run is kept.
        repeats = tf.concat([tf.zeros_like(ordered[:, :1], dtype=tf.bool), tf.equal(ordered[:, 1:], ordered[:, :-1])], axis=1)
        return tf.where(repeats, tf.zeros_like(ordered), ordered)

    def compute_output_shape(self, input_shape):  # noqa: ANN001, ANN201 - Keras signature
        return input_shape


@keras.saving.register_keras_serializable(package="seqflow")
class SumOverSequence(keras.layers.Layer):
    """``(batch, n, d)`` -> ``(batch, d)``: the sum over the sequence (Keras has average and max pooling only).

    NB-SVM adds up the evidence of every feature a review has; averaging would dilute a long review's evidence.
    """

    def call(self, values: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(values, axis=1)

    def compute_output_shape(self, input_shape):  # noqa: ANN001, ANN201 - Keras signature
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="seqflow")
class CombineProbabilities(keras.layers.Layer):
    """``(batch, k)`` member probabilities -> ``(batch, 1)``: their mean (``weights`` empty) or a logistic stack,
    ``sigmoid(bias + sum_i weights[i] * logit(p_i))``. The weights are fixed numbers in the config (fitted
    outside Keras), so the saved ensemble is data that loads in safe mode."""

    # Probabilities are clipped this far from 0 and 1 before taking log-odds: a saturated member gives a large
    # but finite logit.
    EPSILON = 1e-6

    def __init__(self, weights: Sequence[float] = (), bias: float = 0.0, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.member_weights = [float(weight) for weight in weights]
        self.bias = float(bias)

    def call(self, probabilities: tf.Tensor) -> tf.Tensor:
        probabilities = tf.cast(probabilities, tf.float32)
        if not self.member_weights:
            return tf.reduce_mean(probabilities, axis=1, keepdims=True)
        clipped = tf.clip_by_value(probabilities, self.EPSILON, 1.0 - self.EPSILON)
        logits = tf.math.log(clipped) - tf.math.log1p(-clipped)
        weights = tf.constant(self.member_weights, dtype=tf.float32)
        return tf.sigmoid(tf.reduce_sum(logits * weights, axis=1, keepdims=True) + self.bias)

    def compute_output_shape(self, input_shape):  # noqa: ANN001, ANN201 - Keras signature
        return (input_shape[0], 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "weights": self.member_weights, "bias": self.bias}


@keras.saving.register_keras_serializable(package="seqflow")
class HashedBigrams(HashedNgrams):
    """The bigram-only layer under its earlier name, so models saved before trigrams existed still load."""


def build_vectoriser(
    vocab_size: int, vocabulary: Sequence[str] | None = None, standardise: Callable = standardise_review_unicode
) -> keras.layers.TextVectorization:
    """A word-level TextVectorization giving ragged ids; adapt it, or pass a saved ``vocabulary``.

    ``standardise`` is one of the registered standardisation functions above (the default for every new model).

    ``vocabulary`` is the layer's full vocabulary as returned by ``get_vocabulary()`` (padding and OOV
    tokens first), so a saved vocabulary file round-trips exactly.
    """
    vectoriser = keras.layers.TextVectorization(
        max_tokens=vocab_size,
        standardize=standardise,
        split="whitespace",
        output_mode="int",
        ragged=True,
        name="vectoriser",
    )
    if vocabulary is not None:
        # set_vocabulary adds the padding and OOV tokens itself, so leave the saved ones out.
        reserved = {"", OOV_TOKEN}
        vectoriser.set_vocabulary([str(token) for token in vocabulary if str(token) not in reserved])
    return vectoriser
