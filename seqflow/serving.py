"""The MLflow pyfunc that serves raw review text with a saved end-to-end ``.keras`` model.

MLflow's keras flavour rejects string input in its pyfunc, so the registered model is this small
``PythonModel``: it loads the ``.keras`` file (vectoriser + padding + classifier) and scores a ``text`` column.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

TEXT_COLUMN = "text"
KERAS_ARTIFACT = "keras_model"
# Reviews scored per TensorFlow call.
PREDICT_BATCH_SIZE = 256
DECISION_THRESHOLD = 0.5


class ReviewSentimentModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame{text}) -> DataFrame{probability, label}`` for raw review strings."""

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        import keras

        # Registers PadAndTruncate and the standardisation function before the model file is read.
        import seqflow.models.text  # noqa: F401

        self._model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT])

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - mlflow signature
        texts = _texts_from(model_input)
        probabilities = score_texts(self._model, texts)
        return pd.DataFrame(
            {"probability": probabilities, "label": (probabilities >= DECISION_THRESHOLD).astype(np.int64)}
        )


def _texts_from(model_input) -> list[str]:  # noqa: ANN001 - DataFrame, Series, list or str
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN not in model_input.columns:
            raise ValueError(f"input needs a {TEXT_COLUMN!r} column; got columns {list(model_input.columns)}")
        values = model_input[TEXT_COLUMN]
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    return ["" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value) for value in values]


def score_texts(model, texts: list[str]) -> np.ndarray:  # noqa: ANN001 - a keras.Model taking strings
    """Positive-class probabilities for raw texts, in batches."""
    import tensorflow as tf

    if not texts:
        return np.zeros(0, dtype=np.float64)
    chunks = [
        model(tf.constant([[text] for text in texts[start : start + PREDICT_BATCH_SIZE]]), training=False).numpy()
        for start in range(0, len(texts), PREDICT_BATCH_SIZE)
    ]
    return np.concatenate(chunks).reshape(-1).astype(np.float64)
