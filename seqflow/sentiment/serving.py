"""The MLflow pyfunc that serves raw review text with a saved end-to-end ``.keras`` model.

MLflow's keras flavour rejects string input in its pyfunc, so the registered model is this small
``PythonModel``: it loads the ``.keras`` file (vectoriser + padding + classifier) and scores a ``text`` column.

A batch with a review that leaves no word after tokenisation (empty, whitespace, only punctuation or markup) is
refused as a whole, naming every such row: the classifier would average over zero words and answer NaN. The
whole batch, not just those rows, because the output has one probability per input row and no place to say
"no answer"; a caller fixes or drops the rows named and sends the batch again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from seqflow.core.errors import SeqflowError
from seqflow.core.trusted_models import PyfuncKind

TEXT_COLUMN = "text"
KERAS_ARTIFACT = "keras_model"
# Reviews scored per TensorFlow call.
PREDICT_BATCH_SIZE = 256
DECISION_THRESHOLD = 0.5
# Rows named in a refusal, and characters of each row's text shown; the count of all refused rows is always given.
REFUSED_ROWS_SHOWN = 10
REFUSED_TEXT_PREVIEW_CHARS = 40


class InputRefused(SeqflowError, MlflowException):
    """A served model refuses its input. Both kinds of error at once: the ``seqflow`` CLI prints a SeqflowError
    as one line (exit code 2), and MLflow's scoring server answers an MlflowException with
    INVALID_PARAMETER_VALUE as HTTP 400 carrying this message (any other exception becomes a 400 with a generic
    message and a traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def describe_rows(rows: Sequence[int], values: Sequence[object]) -> str:
    """``row 2 of 5 ('!!!'), row 4 of 5 ('')`` for 0-based ``rows`` of ``values``: counted from 1, as people
    (and the CLI's TEXT arguments) count; at most REFUSED_ROWS_SHOWN of them, then how many more."""
    shown = [
        f"row {row + 1} of {len(values)} ({str(values[row])[:REFUSED_TEXT_PREVIEW_CHARS]!r})"
        for row in rows[:REFUSED_ROWS_SHOWN]
    ]
    more = f" and {len(rows) - REFUSED_ROWS_SHOWN} more" if len(rows) > REFUSED_ROWS_SHOWN else ""
    return ", ".join(shown) + more


class ReviewSentimentModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame{text}) -> DataFrame{probability, label}`` for raw review strings."""

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        import keras

        # Importing them registers PadAndTruncate, the standardisation function and LazyAdam (the nested classifier
        # keeps its compile config) before the model file is read.
        import seqflow.core.optimizers  # noqa: F401
        from seqflow.models.text import PAD_LAYER_NAME

        # Safe mode: the file is data; a Lambda layer's pickled bytecode in it is refused, never run.
        self._model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], safe_mode=True)
        # The same model up to the padded ids the classifier sees: tells which reviews leave only padding.
        self._ids_model = keras.Model(self._model.inputs, self._model.get_layer(PAD_LAYER_NAME).output)

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - mlflow signature
        texts = _texts_from(model_input)
        refuse_reviews_without_words(self._ids_model, texts)
        probabilities = score_texts(self._model, texts)
        return pd.DataFrame(
            {"probability": probabilities, "label": (probabilities >= DECISION_THRESHOLD).astype(np.int64)}
        )


REVIEW_SENTIMENT = PyfuncKind(
    name="review-sentiment",
    description="a review sentiment model",
    model_class=ReviewSentimentModel,
    code_path=Path(__file__).with_name("serving_pyfunc.py"),
    artifact_keys=frozenset({KERAS_ARTIFACT}),
    input_columns=(TEXT_COLUMN,),
    used_by="`seqflow predict`",
)


def _texts_from(model_input) -> list[str]:  # noqa: ANN001 - DataFrame, Series, list or str
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN not in model_input.columns:
            raise InputRefused(f"input needs a {TEXT_COLUMN!r} column; got columns {list(model_input.columns)}")
        values = model_input[TEXT_COLUMN]
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    return ["" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value) for value in values]


def _in_batches(model, texts: list[str]) -> list[np.ndarray]:  # noqa: ANN001 - a keras.Model taking strings
    import tensorflow as tf

    return [
        model(tf.constant([[text] for text in texts[start : start + PREDICT_BATCH_SIZE]]), training=False).numpy()
        for start in range(0, len(texts), PREDICT_BATCH_SIZE)
    ]


def score_texts(model, texts: list[str]) -> np.ndarray:  # noqa: ANN001 - a keras.Model taking strings
    """Positive-class probabilities for raw texts, in batches."""
    if not texts:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate(_in_batches(model, texts)).reshape(-1).astype(np.float64)


def rows_without_words(ids_model, texts: list[str]) -> list[int]:  # noqa: ANN001 - strings -> padded ids
    """0-based rows whose padded ids are all padding: nothing of the review is left for the classifier."""
    from seqflow.models.text import PADDING_ID

    if not texts:
        return []
    padded = np.concatenate(_in_batches(ids_model, texts))
    return [int(row) for row in np.flatnonzero((padded == PADDING_ID).all(axis=1))]


def refuse_reviews_without_words(ids_model, texts: list[str]) -> None:  # noqa: ANN001 - strings -> padded ids
    """:class:`InputRefused` naming every review that tokenises to nothing; the batch is not scored."""
    empty = rows_without_words(ids_model, texts)
    if empty:
        raise InputRefused(
            f"{len(empty)} of {len(texts)} review(s) are empty after tokenisation (no word left once case, "
            f"punctuation and markup are removed), so there is nothing to score: {describe_rows(empty, texts)}; "
            "the whole batch is refused: remove or fix these rows and send it again"
        )
