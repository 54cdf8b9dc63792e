"""Row-sparse ("lazy") Adam (seqflow/core/optimizers.py): only the embedding rows a batch touches move, touched rows
follow Adam exactly, duplicated ids sum like the dense gradient, and models compiled with it save, load and serve."""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from seqflow.sentiment.config import TrainingConfig, with_overrides
from seqflow.sentiment.profiles import get_profile
from seqflow.core.errors import ConfigError
from seqflow.models.architectures import EMBEDDING_LAYER, NGRAM_LAYER, ModelSpec, build_model, build_serving_model
from seqflow.core.fitting import build_optimizer
from seqflow.sentiment.train import make_optimizer

VOCABULARY = ["", "[UNK]", "good", "bad", "film", "plot", "acting", "dull", "great", "boring"]
# embedding_pool over 10 words + 40 hashed bigram rows, as the `best` profile's model but tiny.
SPEC = ModelSpec(vocab_size=len(VOCABULARY), embedding_dim=4, dense_units=4, bigram_buckets=40)
LEARNING_RATE = 0.01
# The production default (TrainingConfig.clipnorm): the sparse path must survive global-norm clipping.
CLIPNORM = 1.0
# Two batches over disjoint word ids (and so disjoint bigram rows): rows of the first are idle in the second.
FIRST_BATCH = np.array([[2, 3, 4, 0], [3, 2, 0, 0]], dtype="int32")
SECOND_BATCH = np.array([[6, 7, 8, 0], [9, 8, 0, 0]], dtype="int32")
# Opt-in timing print (kept out of CI's time budget).
TIMING_ENV = "SEQFLOW_LAZY_ADAM_TIMING"
LABELS = np.array([[1.0], [0.0]], dtype="float32")


def _twin_models(seed: int = 7):
    """The embedding_pool model twice with the same initial weights, compiled with lazy and plain Adam."""
    import keras

    keras.utils.set_random_seed(seed)
    lazy = build_model("embedding_pool", SPEC)
    adam = build_model("embedding_pool", SPEC)
    adam.set_weights(lazy.get_weights())
    lazy.compile(optimizer=build_optimizer("lazy_adam", LEARNING_RATE, CLIPNORM), loss="binary_crossentropy")
    adam.compile(optimizer=build_optimizer("adam", LEARNING_RATE, CLIPNORM), loss="binary_crossentropy")
    return lazy, adam


def _embedding(model) -> np.ndarray:  # noqa: ANN001 - a keras.Model
    return np.array(model.get_layer(EMBEDDING_LAYER).get_weights()[0])


def _rows_of(model, batch: np.ndarray) -> np.ndarray:  # noqa: ANN001 - a keras.Model
    """The embedding rows a batch reads: its word ids and their hashed bigram ids (padding row 0 excluded)."""
    ids = np.asarray(model.get_layer(NGRAM_LAYER)(batch))
    return np.unique(ids[ids > 0])


def test_rows_outside_the_batch_stay_put_while_plain_adam_keeps_moving_them():
    lazy, adam = _twin_models()
    assert type(lazy.optimizer).__name__ == "LazyAdam"
    first_rows, second_rows = _rows_of(lazy, FIRST_BATCH), _rows_of(lazy, SECOND_BATCH)
    idle_rows = np.setdiff1d(first_rows, second_rows)
    assert idle_rows.size >= 3
    initial = _embedding(lazy)

    for model in (lazy, adam):
        model.train_on_batch(FIRST_BATCH, LABELS)
    after_first = {"lazy": _embedding(lazy), "adam": _embedding(adam)}
    # Step 1 moved the batch's rows (both optimizers), nothing else.
    assert not np.allclose(after_first["lazy"][first_rows], initial[first_rows])
    for model in (lazy, adam):
        model.train_on_batch(SECOND_BATCH, LABELS)

    # Lazy: rows of the first batch not in the second are exactly where step 1 left them, moments included.
    np.testing.assert_array_equal(_embedding(lazy)[idle_rows], after_first["lazy"][idle_rows])
    # Plain Adam moves them on their momentum although their gradient is zero: every row, every step.
    assert not np.allclose(_embedding(adam)[idle_rows], after_first["adam"][idle_rows])
    # Rows never touched stay at their initial values under both.
    never = np.setdiff1d(np.arange(initial.shape[0]), np.union1d(first_rows, second_rows))
    np.testing.assert_array_equal(_embedding(lazy)[never], initial[never])
    # The rows of the second batch did move.
    assert not np.allclose(_embedding(lazy)[second_rows], after_first["lazy"][second_rows])


def test_touched_rows_follow_adam_exactly_with_its_bias_correction():
    lazy, adam = _twin_models(seed=11)
    # Step 1: with m = v = 0 both give lr * g / (|g| + eps) on the touched rows and 0 elsewhere.
    for model in (lazy, adam):
        model.train_on_batch(FIRST_BATCH, LABELS)
    for lazy_weights, adam_weights in zip(lazy.get_weights(), adam.get_weights()):
        np.testing.assert_allclose(lazy_weights, adam_weights, rtol=1e-5, atol=1e-6)
    # Steps 2-3 on a batch touching the same rows every step: still exactly Adam (global step, bias correction),
    # the dense Dense-layer weights included (dense gradients fall back to Adam's own update).
    for _ in range(2):
        for model in (lazy, adam):
            model.train_on_batch(FIRST_BATCH, LABELS)
    for lazy_weights, adam_weights in zip(lazy.get_weights(), adam.get_weights()):
        np.testing.assert_allclose(lazy_weights, adam_weights, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("clipnorm", [None, 0.05])
def test_duplicated_indices_sum_like_the_dense_gradient(clipnorm):
    import keras
    import tensorflow as tf

    from seqflow.core.optimizers import LazyAdam

    rows = np.arange(24, dtype="float32").reshape(6, 4) / 10
    values = tf.constant([[1.0, -2.0, 0.5, 0.0], [3.0, 1.0, -1.0, 2.0], [0.5, 0.5, 0.5, 0.5]])
    # Row 4 twice, row 1 once: the dense gradient has their sum in row 4.
    sparse = tf.IndexedSlices(values, tf.constant([4, 1, 4]), tf.constant([6, 4]))
    dense = tf.convert_to_tensor(sparse)
    assert np.allclose(dense.numpy()[4], values.numpy()[0] + values.numpy()[2])

    lazy_variable, adam_variable = keras.Variable(rows), keras.Variable(rows)
    LazyAdam(learning_rate=0.1, global_clipnorm=clipnorm).apply_gradients([(sparse, lazy_variable)])
    keras.optimizers.Adam(learning_rate=0.1, global_clipnorm=clipnorm).apply_gradients([(dense, adam_variable)])
    np.testing.assert_allclose(lazy_variable.numpy(), adam_variable.numpy(), rtol=1e-5, atol=1e-6)
    if clipnorm is None:
        # Adam's first step in closed form (m = v = 0 before it): lr * g / (|g| + eps) after bias correction.
        gradient = dense.numpy()
        expected = rows - 0.1 * gradient / (np.abs(gradient) + 1e-7)
        np.testing.assert_allclose(lazy_variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Rows 0, 2, 3, 5 had no gradient: unchanged.
    np.testing.assert_array_equal(lazy_variable.numpy()[[0, 2, 3, 5]], rows[[0, 2, 3, 5]])


def test_global_clipnorm_scales_sparse_gradients_like_keras_and_keeps_them_sparse():
    import tensorflow as tf

    from seqflow.core.optimizers import LazyAdam

    sparse = tf.IndexedSlices(tf.constant([[3.0, 0.0], [0.0, 4.0], [0.0, 4.0]]), tf.constant([1, 2, 2]), [5, 2])
    dense_bias = tf.constant([0.0, 6.0])
    clipped = LazyAdam(global_clipnorm=2.0)._clip_gradients([sparse, dense_bias])
    assert isinstance(clipped[0], tf.IndexedSlices)
    # Dense-equivalent norm: rows 1 = (3, 0), 2 = (0, 8), bias (0, 6): sqrt(9 + 64 + 36).
    scale = 2.0 / np.sqrt(9 + 64 + 36)
    np.testing.assert_allclose(tf.convert_to_tensor(clipped[0]).numpy()[[1, 2]], [[3 * scale, 0], [0, 8 * scale]])
    np.testing.assert_allclose(clipped[1].numpy(), [0.0, 6 * scale], rtol=1e-6)


def test_a_model_compiled_with_lazy_adam_saves_loads_resumes_and_exports(tmp_path):
    import keras

    from seqflow.core.optimizers import LazyAdam
    from seqflow.sentiment.train import export_serving_model

    training = TrainingConfig(optimizer="lazy_adam", learning_rate=LEARNING_RATE)
    keras.utils.set_random_seed(3)
    classifier = build_model("embedding_pool", SPEC)
    classifier.compile(optimizer=make_optimizer(training), loss="binary_crossentropy")
    classifier.train_on_batch(FIRST_BATCH, LABELS)
    classifier_path = tmp_path / "embedding_pool.keras"
    classifier.save(classifier_path)

    loaded = keras.saving.load_model(classifier_path)
    assert isinstance(loaded.optimizer, LazyAdam)
    assert loaded.optimizer.global_clipnorm == training.clipnorm
    for saved, restored in zip(classifier.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
    # Crash recovery (seqflow.core.checkpoints): weights file of model + optimizer, loaded into a fresh compiled model.
    weights_path = tmp_path / "epoch-0001.weights.h5"
    classifier.save_weights(weights_path)
    resumed = build_model("embedding_pool", SPEC)
    resumed.compile(optimizer=make_optimizer(training), loss="binary_crossentropy")
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(weights_path)
    for saved, restored in zip(classifier.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
    # Training goes on from the restored moments and step exactly as it would have without the round trip.
    classifier.train_on_batch(SECOND_BATCH, LABELS)
    loaded.train_on_batch(SECOND_BATCH, LABELS)
    for kept, reloaded in zip(classifier.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(kept, reloaded, rtol=1e-6)

    # The raw-text export loads the classifier, compile config (LazyAdam) included.
    serving_path = export_serving_model(classifier_path, VOCABULARY, 4, "post", "post", tmp_path / "serving.keras")
    assert isinstance(keras.saving.load_model(serving_path).get_layer(classifier.name).optimizer, LazyAdam)


def test_the_serving_pyfunc_registers_lazy_adam_itself(tmp_path, monkeypatch):
    """MLflow loads the pyfunc in a fresh process where nothing imported seqflow.core.optimizers: the nested
    classifier's compile config names LazyAdam, so load_context must register it before reading the file."""
    import keras
    import pandas as pd
    from keras.src.saving import object_registration

    from seqflow.core.optimizers import LazyAdam
    from seqflow.sentiment.serving import KERAS_ARTIFACT, ReviewSentimentModel

    classifier = build_model("embedding_pool", SPEC)
    classifier.compile(optimizer=LazyAdam(), loss="binary_crossentropy")
    classifier.train_on_batch(FIRST_BATCH, LABELS)
    serving_path = tmp_path / "serving.keras"
    build_serving_model(classifier, VOCABULARY, 4, "post", "post").save(serving_path)

    # As a fresh process: LazyAdam unregistered and seqflow.core.optimizers never imported.
    monkeypatch.delitem(object_registration.GLOBAL_CUSTOM_OBJECTS, "seqflow>LazyAdam")
    monkeypatch.delitem(object_registration.GLOBAL_CUSTOM_NAMES, LazyAdam)
    monkeypatch.delitem(sys.modules, "seqflow.core.optimizers")
    with pytest.raises(TypeError, match="LazyAdam"):
        keras.saving.load_model(serving_path)
    pyfunc = ReviewSentimentModel()
    pyfunc.load_context(SimpleNamespace(artifacts={KERAS_ARTIFACT: str(serving_path)}))
    assert "seqflow>LazyAdam" in object_registration.GLOBAL_CUSTOM_OBJECTS
    scored = pyfunc.predict(None, pd.DataFrame({"text": ["good film", "dull plot"]}))
    assert scored["probability"].between(0, 1).all()


def test_config_accepts_lazy_adam_and_still_refuses_unknown_optimizers():
    config = with_overrides(get_profile("quick"), {"training.optimizer": "lazy_adam"})
    assert config.training.optimizer == "lazy_adam"
    with pytest.raises(ConfigError, match=r"training\.optimizer must be one of .*'lazy_adam'.*got 'lazyadam'"):
        with_overrides(get_profile("quick"), {"training.optimizer": "lazyadam"})


@pytest.mark.skipif(not os.environ.get(TIMING_ENV), reason=f"set {TIMING_ENV}=1 to print step times (~10 s)")
def test_step_time_dense_adam_versus_lazy_adam_on_a_million_row_table():
    """Not an assertion on speed (shared cores): prints what one step costs on a `best`-sized bigram table."""
    import keras

    spec = ModelSpec(vocab_size=20_000, embedding_dim=32, dense_units=0, bigram_buckets=1_000_000 - 20_000)
    batch = np.random.default_rng(0).integers(2, spec.vocab_size, size=(64, 200)).astype("int32")
    labels = np.ones((64, 1), dtype="float32")
    seconds = {}
    for name in ("adam", "lazy_adam"):
        model = build_model("embedding_pool", spec)
        model.compile(optimizer=build_optimizer(name, 1e-3, 1.0), loss="binary_crossentropy")
        model.train_on_batch(batch, labels)  # traces the step function
        start = time.perf_counter()
        for _ in range(3):
            model.train_on_batch(batch, labels)
        seconds[name] = (time.perf_counter() - start) / 3
        keras.backend.clear_session()
    print(f"\n1,000,000 x 32 table, batch 64 x 200 ids: {seconds}")
