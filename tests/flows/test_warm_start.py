"""Embedding warm start from a registered model version, through the Tracker and a real SQLite MLflow store."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.sentiment.config import TrainingConfig
from seqflow.core.errors import SeqflowError
from seqflow.sentiment.serving import log_serving_model
from seqflow.sentiment.records import INPUT_EXAMPLE_TEXTS
from seqflow.tasks.sentiment import warm_start_source
from seqflow.core.tracking import Tracker, TrackingError
from seqflow.sentiment.train import export_serving_model, train_classifier

SOURCE_VOCABULARY = ["", "[UNK]", "great", "awful", "plot", "acting"]
# Another order and size: "awful" is id 2 here but 3 there; "boring" and "film" exist only here.
TARGET_VOCABULARY = ["", "[UNK]", "awful", "boring", "great", "film"]


def _arrays(vocab_size: int, rows: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab_size, (rows, 5)).astype("int32")
    labels = rng.integers(0, 2, rows).astype("int32")
    return {"x_train": ids, "y_train": labels, "x_validation": ids[:16], "y_validation": labels[:16]}


def _register_source_model(tracker: Tracker, tmp_path) -> str:
    """Train and register a tiny embedding_pool model; return its models:/ URI."""
    training = TrainingConfig(epochs=1, batch_size=32, embedding_dim=8, dense_units=4, early_stopping_patience=None)
    outcome = train_classifier("embedding_pool", _arrays(len(SOURCE_VOCABULARY)), len(SOURCE_VOCABULARY), training, 1, tmp_path / "source")
    serving_path = export_serving_model(
        outcome.classifier_path, SOURCE_VOCABULARY, 5, "post", "pre", tmp_path / "source" / "serving.keras"
    )
    run_id = tracker.start_run("source", tags={})
    model_uri = log_serving_model(tracker, run_id, serving_path, INPUT_EXAMPLE_TEXTS[:1])
    tracker.end_run(run_id)
    (version,) = tracker.register_versions([("embedding_pool", run_id, model_uri, {"test_accuracy": "0.5"})])
    return f"models:/{tracker.settings.registered_model_name}/{version.version}"


@pytest.mark.slow
def test_warm_start_from_a_registered_version_copies_shared_tokens_and_can_freeze(tracking_settings, tmp_path):
    import keras

    tracker = Tracker(tracking_settings)
    model_uri = _register_source_model(tracker, tmp_path)
    source_embedding = (
        keras.saving.load_model(tmp_path / "source" / "embedding_pool.keras").get_layer("embedding").get_weights()[0]
    )

    frozen = TrainingConfig(
        epochs=2, batch_size=32, embedding_dim=8, dense_units=4, early_stopping_patience=None,
        warm_start_model_uri=model_uri, warm_start_trainable=False,
    )
    source = warm_start_source(tracker, frozen, tmp_path / "download")
    assert source.vocabulary == SOURCE_VOCABULARY
    np.testing.assert_array_equal(source.vectors, source_embedding)

    # A recurrent model may start from the embedding of a bag-of-words model: only the dimension must agree.
    outcome = train_classifier(
        "lstm", _arrays(len(TARGET_VOCABULARY)), len(TARGET_VOCABULARY), frozen, 2, tmp_path / "target",
        vocabulary=TARGET_VOCABULARY, warm_start=source,
    )
    trained = keras.saving.load_model(outcome.classifier_path).get_layer("embedding").get_weights()[0]
    for token in ("", "[UNK]", "great", "awful"):
        np.testing.assert_array_equal(trained[TARGET_VOCABULARY.index(token)], source_embedding[SOURCE_VOCABULARY.index(token)])

    trainable = TrainingConfig(**{**frozen.__dict__, "warm_start_trainable": True})
    tuned = train_classifier(
        "lstm", _arrays(len(TARGET_VOCABULARY)), len(TARGET_VOCABULARY), trainable, 2, tmp_path / "tuned",
        vocabulary=TARGET_VOCABULARY, warm_start=source,
    )
    tuned_rows = keras.saving.load_model(tuned.classifier_path).get_layer("embedding").get_weights()[0]
    assert not np.allclose(tuned_rows[TARGET_VOCABULARY.index("great")], source_embedding[SOURCE_VOCABULARY.index("great")])

    wrong_width = TrainingConfig(**{**frozen.__dict__, "embedding_dim": 16})
    with pytest.raises(SeqflowError, match="8-dimensional embeddings.*embedding_dim=16"):
        train_classifier(
            "lstm", _arrays(len(TARGET_VOCABULARY)), len(TARGET_VOCABULARY), wrong_width, 2, tmp_path / "wrong",
            vocabulary=TARGET_VOCABULARY, warm_start=source,
        )


def test_warm_start_from_a_missing_version_says_which(tracking_settings, tmp_path):
    tracker = Tracker(tracking_settings)
    training = TrainingConfig(warm_start_model_uri=f"models:/{tracking_settings.registered_model_name}/7")
    with pytest.raises(TrackingError, match="cannot download model 'models:/seqflow-test-sentiment/7'"):
        warm_start_source(tracker, training, tmp_path / "download")
    assert warm_start_source(tracker, TrainingConfig(), tmp_path / "none") is None
