"""Served models refuse what they cannot score: a review with no word left after tokenisation (the classifier
would answer NaN), a prefix with characters the character model never saw. The whole batch is refused, with
every such row named, as an error both the CLI (SeqflowError) and MLflow's scoring server (HTTP 400) report.

The registered pyfuncs are used as MLflow loads them (``load_context`` with the artifact paths) on tiny
untrained models: refusing depends on the vocabulary and the tokenisation, not on what was learned.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from seqflow.core.errors import SeqflowError
from seqflow.sentiment.serving import InputRefused

REVIEW_VOCABULARY = ["", "[UNK]", "good", "bad", "film"]


@pytest.fixture(scope="module")
def review_model(tmp_path_factory):
    """The sentiment pyfunc around an untrained embedding_pool serving model (pre-padding: the padding side
    must not matter), plus the serving model itself."""
    from seqflow.models.architectures import ModelSpec, build_model, build_serving_model
    from seqflow.sentiment.serving import KERAS_ARTIFACT, ReviewSentimentModel

    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(REVIEW_VOCABULARY), embedding_dim=4))
    serving = build_serving_model(classifier, REVIEW_VOCABULARY, max_length=6, padding="pre", truncation="post")
    path = tmp_path_factory.mktemp("review-model") / "serving.keras"
    serving.save(path)
    model = ReviewSentimentModel()
    model.load_context(SimpleNamespace(artifacts={KERAS_ARTIFACT: str(path)}))
    return model, serving


def _refusal(model, rows: pd.DataFrame) -> str:  # noqa: ANN001 - a loaded pyfunc model
    """The message of the bad-parameter refusal ``model`` answers ``rows`` with (no row is scored)."""
    with pytest.raises(InputRefused) as refused:
        model.predict(None, rows)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    return str(refused.value)


def _names_only(message: str, total: int, named: dict[int, str]) -> None:
    """``message`` says "row N of TOTAL" followed by ``named[N]`` for each named row, and names no other row."""
    for row in range(1, total + 1):
        if row in named:
            assert f"row {row} of {total}{named[row]}" in message, message
        else:
            assert f"row {row} " not in message, message


def test_reviews_without_words_are_refused_by_row_not_scored_as_nan(review_model):
    import tensorflow as tf
    from mlflow.exceptions import MlflowException

    model, serving = review_model
    texts = ["good film", "", "  !!! <br /> ...", "zzz unknown words", None]
    # What the refusal prevents: the averaging classifier divides by zero words.
    assert np.isnan(serving(tf.constant([[""], ["!!!"]])).numpy()).all()

    with pytest.raises(InputRefused) as refused:
        model.predict(None, pd.DataFrame({"text": texts}))
    error = refused.value
    assert isinstance(error, SeqflowError) and isinstance(error, MlflowException)
    assert error.error_code == "INVALID_PARAMETER_VALUE" and error.get_http_status_code() == 400
    message = str(error)
    assert message.startswith("3 of 5 review(s) are empty after tokenisation")
    assert "row 2 of 5 (''), row 3 of 5 ('  !!! <br /> ...'), row 5 of 5 ('')" in message
    assert "row 1 " not in message and "row 4 " not in message

    # Words outside the vocabulary are still words (the OOV id): scored like any review.
    scored = model.predict(None, pd.DataFrame({"text": [texts[0], texts[3]]}))
    assert len(scored) == 2 and np.isfinite(scored["probability"]).all()
    with pytest.raises(InputRefused, match="input needs a 'text' column; got columns \\['review'\\]"):
        model.predict(None, pd.DataFrame({"review": ["good film"]}))


def _char_model(folder: Path, vocabulary: list[str]):
    from seqflow.charlm.generate import STEP_MODEL_ARTIFACT, VOCABULARY_ARTIFACT, CharGenerationModel
    from seqflow.models.charlm import CharLMSpec, build_char_model, build_step_model

    step_model = build_step_model(build_char_model("char_gru", CharLMSpec(vocab_size=len(vocabulary), embedding_dim=4, rnn_units=8)))
    step_model.save(folder / "step.keras")
    (folder / "vocabulary.json").write_text(json.dumps(vocabulary), encoding="utf-8")
    model = CharGenerationModel()
    model.load_context(SimpleNamespace(artifacts={
        STEP_MODEL_ARTIFACT: str(folder / "step.keras"), VOCABULARY_ARTIFACT: str(folder / "vocabulary.json"),
    }))
    return model


def test_char_model_refuses_prefixes_it_cannot_read(tmp_path):
    # Index 0 is the unknown marker, as in every character vocabulary; no line break in this one.
    model = _char_model(tmp_path, ["\ufffd", *"abc :"])
    rows = pd.DataFrame({
        "prefix": ["ab c", "abé☃é", "", "a\ufffd", "abc"],
        "length": [5, 5, 5, 5, -1],
        "temperature": [0.5, 0.5, 0.5, 0.5, 0.5],
        "seed": [1, 1, 1, 1, 1],
    })
    message = _refusal(model, rows)
    assert message.startswith("cannot generate for 4 of 5 row(s), the whole batch is refused")
    _names_only(message, 5, {
        2: ": prefix 'abé☃é' has 2 character(s) outside the model's vocabulary of 5",
        3: ": prefix '' is empty, and this model's vocabulary has no line break to start from",
        # The unknown marker is in the vocabulary list, but only as the untrained stand-in for unseen characters.
        4: ": prefix 'a\ufffd' has 1 character(s)",
        5: ": length must not be negative, got -1",
    })
    assert "'é☃'" in message

    generated = model.predict(None, rows.iloc[[0]])
    assert generated["text"][0] == "ab c" + generated["continuation"][0] and len(generated["continuation"][0]) == 5


def test_empty_prefix_starts_after_a_line_break_when_the_model_knows_one(tmp_path):
    model = _char_model(tmp_path, ["\ufffd", "\n", *"abc"])
    generated = model.predict(None, pd.DataFrame({"prefix": [""], "length": [4], "temperature": [0.0]}))
    assert len(generated["continuation"][0]) == 4


def test_rows_that_are_not_utf8_text_are_refused_by_number(review_model):
    # A lone surrogate is what Python makes of invalid UTF-8 bytes in argv (`seqflow predict $'\xff\xfe ...'`)
    # and of a "\udcff" escape in JSON; numbers, booleans and objects come from JSON over HTTP.
    model, _ = review_model
    texts = ["good film", "\udcff\udcfe great film", 5, {"text": "good"}, True, b"good film", b"\xff bad", "bad"]
    message = _refusal(model, pd.DataFrame({"text": texts}))
    assert message.startswith("5 of 8 review(s) are not UTF-8 text: row 2 of 8 is not valid UTF-8")
    assert "character 1 is '\\udcff', a lone surrogate" in message
    _names_only(message, 8, {
        2: " is not valid UTF-8",
        3: " is int '5', not text",
        4: " is dict \"{'text': 'good'}\", not text",
        5: " is bool 'True', not text",
        7: " is bytes that are not valid UTF-8 (byte 1",
    })
    # UTF-8 bytes are text.
    assert len(model.predict(None, pd.DataFrame({"text": ["good", b"good film"]}))) == 2


def test_rows_are_named_by_their_place_in_the_whole_input_across_batches(review_model, monkeypatch):
    from seqflow.sentiment import serving

    model, serving_model = review_model
    monkeypatch.setattr(serving, "PREDICT_BATCH_SIZE", 2)
    texts = ["good", "bad film", "film", "...", "good good", "!"]
    with pytest.raises(InputRefused, match=r"2 of 6 review\(s\) are empty .*row 4 of 6 \('...'\), row 6 of 6 \('!'\)"):
        model.predict(None, pd.DataFrame({"text": texts}))
    scored = model.predict(None, pd.DataFrame({"text": texts[:3]}))
    # One pass scores and finds empty rows: the same probabilities as the serving model called directly.
    import tensorflow as tf

    direct = serving_model(tf.constant([[text] for text in texts[:3]])).numpy().reshape(-1)
    np.testing.assert_allclose(scored["probability"].to_numpy(), direct, rtol=1e-6)
    assert scored["label"].tolist() == (direct >= 0.5).astype(int).tolist()
