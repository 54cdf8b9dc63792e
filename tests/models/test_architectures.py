"""Every architecture builds, ignores padding when masked, and learns a tiny separable task."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.sentiment.config import ALL_ARCHITECTURES, TrainingConfig
from seqflow.models.architectures import MODEL_BUILDERS, ModelSpec, build_model, build_serving_model

SPEC = ModelSpec(vocab_size=30, embedding_dim=8, rnn_units=8, dense_units=8, dropout=0.0)


def test_registry_covers_every_configured_architecture():
    assert sorted(MODEL_BUILDERS) == sorted(ALL_ARCHITECTURES)


@pytest.mark.parametrize("architecture", ALL_ARCHITECTURES)
def test_builds_uncompiled_probability_model(architecture):
    model = build_model(architecture, SPEC)
    assert model.name == architecture
    # models/ never compiles: training decides optimizer and loss.
    assert not model.compiled
    output = model(np.array([[3, 4, 5, 0]], dtype="int32")).numpy()
    assert output.shape == (1, 1)
    assert 0.0 < float(output[0, 0]) < 1.0


@pytest.mark.parametrize("architecture", ALL_ARCHITECTURES)
def test_masked_output_does_not_depend_on_padding_length(architecture):
    model = build_model(architecture, SPEC)
    short = np.array([[7, 8, 9, 0, 0]], dtype="int32")
    long = np.array([[7, 8, 9] + [0] * 60], dtype="int32")
    np.testing.assert_allclose(model(short).numpy(), model(long).numpy(), rtol=1e-5, atol=1e-6)


def test_unmasked_simple_rnn_is_affected_by_padding():
    """The seeds' failure mode: without a mask the final state is read after the padding."""
    model = build_model("simple_rnn", ModelSpec(**{**SPEC.__dict__, "mask_padding": False}))
    short = np.array([[7, 8, 9, 0, 0]], dtype="int32")
    long = np.array([[7, 8, 9] + [0] * 60], dtype="int32")
    assert not np.allclose(model(short).numpy(), model(long).numpy(), atol=1e-6)


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match="embedding_pool"):
        build_model("transformer", SPEC)


def _toy_reviews(rng: np.random.Generator, rows: int, length: int = 12):
    """Ids 2..9 are 'negative' words and 10..17 'positive' words; label = which kind a review uses."""
    labels = rng.integers(0, 2, rows)
    ids = np.zeros((rows, length), dtype="int32")
    for row, label in enumerate(labels):
        words = rng.integers(10, 18, size=rng.integers(3, length)) if label else rng.integers(2, 10, size=rng.integers(3, length))
        ids[row, : len(words)] = words
    return ids, labels.astype("int32")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ALL_ARCHITECTURES)
def test_learns_a_separable_toy_task(architecture, tmp_path):
    from seqflow.sentiment.train import train_classifier

    rng = np.random.default_rng(0)
    x_train, y_train = _toy_reviews(rng, 256)
    x_val, y_val = _toy_reviews(rng, 64)
    arrays = {"x_train": x_train, "y_train": y_train, "x_validation": x_val, "y_validation": y_val}
    training = TrainingConfig(
        architectures=(architecture,), epochs=8, batch_size=32, learning_rate=1e-2, embedding_dim=8,
        rnn_units=8, dense_units=8, dropout=0.0, early_stopping_patience=None,
    )
    outcome = train_classifier(architecture, arrays, 18, training, seed=1, output_dir=tmp_path)
    assert outcome.epochs_run == 8
    assert len(outcome.history["val_accuracy"]) == 8
    assert outcome.history["val_accuracy"][-1] >= 0.9, outcome.history
    assert outcome.classifier_path.is_file()


def test_serving_model_scores_raw_text_like_the_classifier_scores_ids():
    import tensorflow as tf

    from seqflow.models.text import PadAndTruncate, build_vectoriser

    vocabulary = ["", "[UNK]", "great", "film", "awful"]
    classifier = build_model("lstm", ModelSpec(vocab_size=len(vocabulary), embedding_dim=4, rnn_units=4))
    serving = build_serving_model(classifier, vocabulary, max_length=6, padding="post", truncation="post")
    texts = ["Great film!", "awful<br />film, unknownword"]
    ids = PadAndTruncate(6, "post", "post")(build_vectoriser(len(vocabulary), vocabulary)(tf.constant(texts)))
    assert ids.numpy().tolist() == [[2, 3, 0, 0, 0, 0], [4, 3, 1, 0, 0, 0]]
    np.testing.assert_allclose(
        serving(tf.constant([[t] for t in texts])).numpy(), classifier(ids).numpy(), rtol=1e-6
    )


def test_mixed_precision_keeps_a_float32_output_and_restores_the_policy(tmp_path):
    import keras

    from seqflow.sentiment.train import train_classifier

    rng = np.random.default_rng(0)
    x, y = _toy_reviews(rng, 64)
    arrays = {"x_train": x, "y_train": y, "x_validation": x[:16], "y_validation": y[:16]}
    training = TrainingConfig(
        architectures=("lstm",), epochs=1, batch_size=32, embedding_dim=8, rnn_units=8, dense_units=8,
        early_stopping_patience=None, precision="mixed_bfloat16",
    )
    outcome = train_classifier("lstm", arrays, 18, training, seed=1, output_dir=tmp_path)
    model = keras.saving.load_model(outcome.classifier_path)
    assert model.get_layer("lstm").dtype_policy.name == "mixed_bfloat16"
    assert model(x[:2]).dtype == "float32"
    assert keras.mixed_precision.dtype_policy().name == "float32"
