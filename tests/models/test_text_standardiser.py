"""The review standardiser keeps the letters of every script, and versions saved with the earlier ASCII-only
standardiser keep scoring with theirs.

``data/serving_ascii_standardiser.keras`` was saved by seqflow before the Unicode standardiser existed (commit
9b8d4d9, untrained embedding_pool, vocabulary below): a real old file, loaded as a registered version's is.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from seqflow.sentiment.serving import InputRefused

OLD_MODEL = Path(__file__).parent / "data" / "serving_ascii_standardiser.keras"
# The old file's vocabulary: "am", "lie", "caf" are what the ASCII standardiser made of "amélie" and "café".
VOCABULARY = ["", "[UNK]", "am", "lie", "caf", "amélie", "café", "good"]


def _tokens(texts: list[str]) -> list[list[str]]:
    import tensorflow as tf

    from seqflow.models.text import standardise_review_unicode

    return [text.decode("utf-8").split() for text in standardise_review_unicode(tf.constant(texts)).numpy()]


def test_unicode_standardiser_keeps_letters_of_every_script():
    assert _tokens(["Amélie was naïve, a café RÉSUMÉ!<br />ÉCOLE"]) == [
        ["amélie", "was", "naïve", "a", "café", "résumé", "école"]
    ]
    assert _tokens(["Отличный ФИЛЬМ, 10/10"]) == [["отличный", "фильм", "10", "10"]]
    # No spaces between words in Chinese and Japanese: one token per character rather than one per sentence.
    assert _tokens(["好电影！"]) == [["好", "电", "影"]]
    # Apostrophes (typographic too) stay inside words: negations matter for sentiment.
    assert _tokens(["Don’t miss it; it isn't bad"]) == [["don't", "miss", "it", "it", "isn't", "bad"]]


def _pyfunc(path: Path):
    from seqflow.sentiment.serving import KERAS_ARTIFACT, ReviewSentimentModel

    model = ReviewSentimentModel()
    model.load_context(SimpleNamespace(artifacts={KERAS_ARTIFACT: str(path)}))
    return model


def _padded_ids(pyfunc, texts: list[str]) -> np.ndarray:
    import keras
    import tensorflow as tf

    from seqflow.models.text import PAD_LAYER_NAME

    model = pyfunc._model
    ids_model = keras.Model(model.inputs, model.get_layer(PAD_LAYER_NAME).output)
    return ids_model(tf.constant([[text] for text in texts])).numpy()


def test_version_saved_with_the_ascii_standardiser_standardises_the_old_way_after_load(tmp_path):
    from seqflow.models.architectures import ModelSpec, build_model, build_serving_model
    from seqflow.models.text import standardise_review

    old = _pyfunc(OLD_MODEL)
    assert old._model.get_layer("vectoriser")._standardize is standardise_review
    # Its vocabulary was built from ASCII-standardised text: "amélie" -> "am", "lie"; "café" -> "caf".
    assert _padded_ids(old, ["Amélie café good"]).tolist() == [[2, 3, 4, 7, 0, 0]]

    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(VOCABULARY), embedding_dim=2))
    path = tmp_path / "new.keras"
    build_serving_model(classifier, VOCABULARY, max_length=6, padding="post", truncation="post").save(path)
    new = _pyfunc(path)
    assert _padded_ids(new, ["Amélie café good"]).tolist() == [[5, 6, 7, 0, 0, 0]]
    # A Cyrillic review is words (out of this vocabulary) for the new model, not "empty".
    assert np.isfinite(new.predict(None, pd.DataFrame({"text": ["Отличный фильм"]}))["probability"]).all()


def test_old_version_says_why_a_review_in_another_script_is_empty():
    with pytest.raises(InputRefused) as refused:
        _pyfunc(OLD_MODEL).predict(None, pd.DataFrame({"text": ["good", "Отличный фильм"]}))
    message = str(refused.value)
    assert "row 2 of 2 ('Отличный фильм')" in message and "row 1 " not in message
    assert "trained with the ASCII-only standardiser" in message
