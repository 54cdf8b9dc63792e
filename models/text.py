"""Text-to-ids layers shared by tokenisation and the exported, raw-text-serving model.

The same functions build the vectoriser that tokenises the training data and the one inside the exported
model, so serving sees exactly the ids training saw.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

# Ids that TextVectorization reserves: 0 pads, 1 stands for every out-of-vocabulary word.
PADDING_ID = 0
OOV_ID = 1
OOV_TOKEN = "[UNK]"


@keras.saving.register_keras_serializable(package="seqflow")
def standardise_review(texts: tf.Tensor) -> tf.Tensor:
    """Lower-case, turn IMDB's ``<br />`` line breaks into spaces, drop punctuation except apostrophes."""
    lowered = tf.strings.lower(texts)
    without_breaks = tf.strings.regex_replace(lowered, r"<br\s*/?>", " ")
    # Keep apostrophes so "don't" and "isn't" stay one token: negations matter for sentiment.
    return tf.strings.regex_replace(without_breaks, r"[^\w\s']", " ")


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


def build_vectoriser(vocab_size: int, vocabulary: Sequence[str] | None = None) -> keras.layers.TextVectorization:
    """A word-level TextVectorization giving ragged ids; adapt it, or pass a saved ``vocabulary``.

    ``vocabulary`` is the layer's full vocabulary as returned by ``get_vocabulary()`` (padding and OOV
    tokens first), so a saved vocabulary file round-trips exactly.
    """
    vectoriser = keras.layers.TextVectorization(
        max_tokens=vocab_size,
        standardize=standardise_review,
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
