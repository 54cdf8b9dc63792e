"""The MLflow pyfunc that serves raw review text with a saved end-to-end ``.keras`` model.

MLflow's keras flavour rejects string input in its pyfunc, so the registered model is this small
``PythonModel``: it loads the ``.keras`` file (vectoriser + padding + classifier) and scores a ``text`` column.

A batch with a review that leaves no word after tokenisation (empty, whitespace, only punctuation or markup) is
refused as a whole, naming every such row: the classifier would average over zero words and answer NaN. The
whole batch, not just those rows, because the output has one probability per input row and no place to say
"no answer"; a caller fixes or drops the rows named and sends the batch again.
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path
from typing import Sequence

import mlflow.pyfunc
import numpy as np
import pandas as pd

from seqflow.core.refusals import (  # noqa: F401 - InputRefused and the limits re-exported for earlier imports
    REFUSED_ROWS_SHOWN,
    REFUSED_TEXT_PREVIEW_CHARS,
    InputRefused,
    describe_rows,
)
from seqflow.core.trusted_models import PyfuncKind

TEXT_COLUMN = "text"
KERAS_ARTIFACT = "keras_model"
# Reviews scored per TensorFlow call: large enough that TensorFlow's per-call overhead is small against the
# work (256 spent a third of the time there), small enough that a recurrent model's activations for a batch
# (1,024 x 500 ids x 64 units of float32 = 131 MB) stay modest.
PREDICT_BATCH_SIZE = 1024
DECISION_THRESHOLD = 0.5
class ReviewSentimentModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame{text}) -> DataFrame{probability, label}`` for raw review strings."""

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow's PythonModelContext
        import keras

        # Importing them registers PadAndTruncate, the standardisation functions and LazyAdam (the nested
        # classifier keeps its compile config) before the model file is read.
        import seqflow.core.optimizers  # noqa: F401
        import seqflow.models.text  # noqa: F401

        # Safe mode: the file is data; a Lambda layer's pickled bytecode in it is refused, never run.
        self._model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], safe_mode=True)

    # The input hint (a DataFrame: MLflow infers no schema from it and validates nothing) answers MLflow's
    # "Add type hints to the predict method" warning at its cause; the signature is logged with the model.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001 - mlflow signature
        return score_reviews(self._model, texts_from(model_input))


def _as_text(value: object) -> tuple[str, str | None]:
    """``(text, problem)`` for one input value: missing becomes "" (refused later as empty); anything that is
    not a UTF-8 string comes back with what is wrong with it."""
    if value is None or (pd.api.types.is_scalar(value) and not isinstance(value, (str, bytes)) and pd.isna(value)):
        return "", None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return "", f"is bytes that are not valid UTF-8 (byte {exc.start + 1}: {exc.reason})"
    if not isinstance(value, str):
        # JSON numbers, booleans, objects and lists: str() would score "5" or "{'a': 1}" as if it were a review.
        return "", f"is {type(value).__name__} {str(value)[:REFUSED_TEXT_PREVIEW_CHARS]!r}, not text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates: what Python makes of invalid UTF-8 bytes in argv, or a JSON "\ud800" escape.
        return "", (
            f"is not valid UTF-8 ({value[:REFUSED_TEXT_PREVIEW_CHARS]!r}: character {exc.start + 1} is "
            f"{value[exc.start]!r}, a lone surrogate: invalid bytes or a broken escape)"
        )
    return value, None


REVIEW_SENTIMENT = PyfuncKind(
    name="review-sentiment",
    description="a review sentiment model",
    model_class=ReviewSentimentModel,
    code_path=Path(__file__).with_name("serving_pyfunc.py"),
    artifact_keys=frozenset({KERAS_ARTIFACT}),
    input_columns=(TEXT_COLUMN,),
    used_by="`seqflow predict`",
)


def texts_from(model_input) -> list[str]:  # noqa: ANN001 - DataFrame, Series, list or str
    """The review strings of ``model_input``; :class:`InputRefused` naming every row that is not UTF-8 text."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN not in model_input.columns:
            raise InputRefused(f"input needs a {TEXT_COLUMN!r} column; got columns {list(model_input.columns)}")
        values = model_input[TEXT_COLUMN].tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    texts, problems = [], []
    for row, value in enumerate(values):
        text, problem = _as_text(value)
        texts.append(text)
        if problem:
            problems.append(f"row {row + 1} of {len(values)} {problem}")
    if problems:
        more = f" and {len(problems) - REFUSED_ROWS_SHOWN} more" if len(problems) > REFUSED_ROWS_SHOWN else ""
        raise InputRefused(
            f"{len(problems)} of {len(values)} review(s) are not UTF-8 text: {'; '.join(problems[:REFUSED_ROWS_SHOWN])}"
            f"{more}; the whole batch is refused: send every review as a UTF-8 string"
        )
    return texts


# One compiled scoring function per loaded serving model (weak keys: it goes when the model goes). Not an
# attribute of the pyfunc, which MLflow pickles.
_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scorer(model):  # noqa: ANN001, ANN202 - a keras.Model taking strings; a tf.function
    """strings ``(n, 1)`` -> ``(probabilities (n,), without_words (n,))`` in ONE pass through the model: the
    padded ids (are they all padding?) and the probability come from the same call, not from two models."""
    scorer = _SCORERS.get(model)
    if scorer is None:
        import keras
        import tensorflow as tf

        from seqflow.models.text import PAD_LAYER_NAME, PADDING_ID

        both = keras.Model(model.inputs, [model.get_layer(PAD_LAYER_NAME).output, model.outputs[0]])

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.string)], reduce_retracing=True)
        def scorer(texts):  # noqa: ANN001, ANN202
            padded, probabilities = both(texts, training=False)
            return tf.reshape(probabilities, [-1]), tf.reduce_all(tf.equal(padded, PADDING_ID), axis=1)

        _SCORERS[model] = scorer
    return scorer


def score_with_empty_rows(model, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:  # noqa: ANN001
    """Positive-class probabilities of raw texts and the 0-based rows that left no word (their probability is
    NaN: the classifier averaged over nothing), in batches of PREDICT_BATCH_SIZE."""
    import tensorflow as tf

    if not texts:
        return np.zeros(0, dtype=np.float64), []
    scorer = _scorer(model)
    probabilities, without_words = [], []
    for start in range(0, len(texts), PREDICT_BATCH_SIZE):
        # One flat object array -> one string tensor: no nested Python list per review.
        batch = np.asarray(texts[start : start + PREDICT_BATCH_SIZE], dtype=object).reshape(-1, 1)
        scored, empty = scorer(tf.constant(batch, dtype=tf.string))
        probabilities.append(scored.numpy())
        without_words.append(empty.numpy())
    return (
        np.concatenate(probabilities).astype(np.float64),
        [int(row) for row in np.flatnonzero(np.concatenate(without_words))],
    )


def score_texts(model, texts: Sequence[str]) -> np.ndarray:  # noqa: ANN001 - a keras.Model taking strings
    """Positive-class probabilities for raw texts, in batches (NaN where a text leaves no word)."""
    return score_with_empty_rows(model, texts)[0]


def score_reviews(model, texts: Sequence[str]) -> pd.DataFrame:  # noqa: ANN001 - a keras.Model taking strings
    """``DataFrame{probability, label}`` for ``texts``, or :class:`InputRefused` naming every review that
    tokenises to nothing (the batch is not answered)."""
    probabilities, empty = score_with_empty_rows(model, texts)
    if empty:
        raise InputRefused(
            f"{len(empty)} of {len(texts)} review(s) are empty after tokenisation (no word left once case, "
            f"punctuation and markup are removed{_ascii_only_hint(model, texts, empty)}), so there is nothing "
            f"to score: {describe_rows(empty, texts)}; the whole batch is refused: remove or fix these rows and "
            "send it again"
        )
    return pd.DataFrame({"probability": probabilities, "label": (probabilities >= DECISION_THRESHOLD).astype(np.int64)})


def _ascii_only_hint(model, texts: Sequence[str], rows: Sequence[int]) -> str:  # noqa: ANN001 - a keras.Model
    """Why a review in another script is "empty" for a model of the ASCII-only standardiser, or ""."""
    from seqflow.models.text import standardise_review

    vectoriser = next((layer for layer in model.layers if hasattr(layer, "get_vocabulary")), None)
    if getattr(vectoriser, "_standardize", None) is not standardise_review:
        return ""
    if not any(not texts[row].isascii() for row in rows):
        return ""
    return (
        "; this model version was trained with the ASCII-only standardiser, which also removes every letter "
        "outside A-Z: score such reviews with a version trained since that was fixed (2026-12-02)"
    )


def renumber_rows(message: str, offset: int) -> str:
    """A refusal about one batch, with its ``row K of N`` (see :func:`describe_rows`) as ``row offset+K``: the
    row's place in a whole input that was scored ``N`` rows at a time."""
    return re.sub(r"\brow (\d+) of \d+\b", lambda match: f"row {offset + int(match.group(1))}", message)


def serving_signature():  # noqa: ANN201 - an MLflow ModelSignature
    """Raw review text in; the positive-class probability and the 0/1 label out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
        outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label")]),
    )


def log_serving_model(models, run_id: str, keras_model_path: Path, example_texts: list[str]) -> str:  # noqa: ANN001 - a seqflow.core.models.ModelFiles
    """Log the raw-text pyfunc (wrapping ``keras_model_path``) to the run; returns its ``runs:/`` URI."""
    return models.log_pyfunc_model(
        run_id,
        REVIEW_SENTIMENT,
        {KERAS_ARTIFACT: str(keras_model_path)},
        serving_signature(),
        pd.DataFrame({TEXT_COLUMN: example_texts}),
    )
