"""NB-SVM: binarised features, log-count ratios from the training split only, and a saved model that serves."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.sentiment.config import TrainingConfig
from seqflow.models.architectures import LOG_COUNT_RATIO_LAYER, ModelSpec, build_model
from seqflow.sentiment.train import log_count_ratios, set_log_count_ratios


def test_distinct_ids_keep_each_id_once_and_turn_repeats_into_padding():
    from seqflow.models.text import DistinctIds

    ids = np.array([[5, 3, 5, 0, 3, 5], [7, 7, 7, 7, 0, 0]], dtype="int32")
    distinct = DistinctIds()(ids).numpy()
    assert distinct.shape == ids.shape
    assert [sorted(set(row) - {0}) for row in distinct.tolist()] == [[3, 5], [7]]
    # Nothing but the distinct ids survives: one 3, one 5, the rest padding.
    assert sorted(distinct[0].tolist()) == [0, 0, 0, 0, 3, 5]


def test_log_count_ratios_point_to_the_class_a_feature_occurs_in():
    # Feature 1 occurs in positive reviews only, 2 in negative only, 3 equally; 0 is padding.
    ratios = log_count_ratios(np.array([500, 10, 0, 5]), np.array([500, 0, 10, 5]))
    assert ratios[0] == 0.0
    assert ratios[1] > 0 > ratios[2]
    assert ratios[3] == pytest.approx(0.0)
    assert ratios[1] == pytest.approx(-ratios[2])


def _toy_reviews(rng: np.random.Generator, rows: int, length: int = 12):
    """Ids 2..9 are 'negative' words and 10..17 'positive' words; label = which kind a review uses."""
    labels = rng.integers(0, 2, rows)
    ids = np.zeros((rows, length), dtype="int32")
    for row, label in enumerate(labels):
        low = 10 if label else 2
        words = rng.integers(low, low + 8, size=rng.integers(3, length))
        ids[row, : len(words)] = words
    return ids, labels.astype("int32")


@pytest.mark.parametrize("bigram_buckets", [0, 50])
def test_ratios_from_the_training_split_alone_already_separate_the_classes(bigram_buckets):
    rng = np.random.default_rng(0)
    x_train, y_train = _toy_reviews(rng, 200)
    x_test, y_test = _toy_reviews(rng, 100)
    model = build_model("nbsvm", ModelSpec(vocab_size=18, bigram_buckets=bigram_buckets))
    untrained = model(x_test).numpy().ravel()
    # Zero ratios: no evidence either way.
    np.testing.assert_allclose(untrained, 0.5, atol=1e-6)
    assert set_log_count_ratios(model, x_train, y_train)
    ratios = model.get_layer(LOG_COUNT_RATIO_LAYER).get_weights()[0].ravel()
    assert ratios.shape == (18 + bigram_buckets,)
    assert ratios[0] == 0.0
    assert (ratios[10:18] > 0).all() and (ratios[2:10] < 0).all()
    # Naive Bayes before any fitting: the direction is right on unseen reviews.
    assert ((model(x_test).numpy().ravel() > 0.5) == y_test).mean() >= 0.95


def test_other_architectures_get_no_ratios():
    model = build_model("embedding_pool", ModelSpec(vocab_size=18, embedding_dim=4))
    assert not set_log_count_ratios(model, np.ones((4, 3), "int32"), np.array([0, 1, 0, 1]))


def test_repeating_a_word_does_not_change_the_score():
    """Presence, not counts: NB-SVM's binarised features."""
    rng = np.random.default_rng(1)
    x_train, y_train = _toy_reviews(rng, 200)
    model = build_model("nbsvm", ModelSpec(vocab_size=18))
    set_log_count_ratios(model, x_train, y_train)
    once = np.array([[12, 3, 0, 0, 0, 0]], dtype="int32")
    many = np.array([[12, 12, 12, 3, 12, 0]], dtype="int32")
    np.testing.assert_allclose(model(once).numpy(), model(many).numpy(), rtol=1e-6)


def test_trained_model_keeps_its_ratios_frozen_and_round_trips_through_a_keras_file(tmp_path):
    import keras

    from seqflow.sentiment.train import train_classifier

    rng = np.random.default_rng(2)
    x_train, y_train = _toy_reviews(rng, 128)
    x_val, y_val = _toy_reviews(rng, 32)
    arrays = {"x_train": x_train, "y_train": y_train, "x_validation": x_val, "y_validation": y_val}
    training = TrainingConfig(
        architectures=("nbsvm",), epochs=2, batch_size=32, bigram_buckets=40, early_stopping_patience=None
    )
    outcome = train_classifier("nbsvm", arrays, 18, training, seed=1, output_dir=tmp_path)
    expected = build_model("nbsvm", ModelSpec(vocab_size=18, bigram_buckets=40))
    set_log_count_ratios(expected, x_train, y_train)
    loaded = keras.saving.load_model(outcome.classifier_path)
    # Fitting moved the feature weights, never the ratios counted before it.
    np.testing.assert_allclose(
        loaded.get_layer(LOG_COUNT_RATIO_LAYER).get_weights()[0], expected.get_layer(LOG_COUNT_RATIO_LAYER).get_weights()[0]
    )
    assert not np.allclose(loaded.get_layer("feature_weights").get_weights()[0], 0.04)
    assert outcome.history["val_accuracy"][-1] >= 0.9


def test_an_nbsvm_version_as_warm_start_source_is_refused_by_name(tmp_path):
    """Warm start copies embedding rows; nbsvm has none, so pointing --warm-start at it must say so plainly."""
    from seqflow.core.errors import SeqflowError
    from seqflow.models.architectures import build_serving_model
    from seqflow.sentiment.train import read_embedding_source

    vocabulary = ["", "[UNK]", "not", "good", "film"]
    classifier = build_model("nbsvm", ModelSpec(vocab_size=len(vocabulary), bigram_buckets=7))
    serving_path = tmp_path / "serving.keras"
    build_serving_model(classifier, vocabulary, max_length=8, padding="post", truncation="pre").save(serving_path)
    with pytest.raises(SeqflowError, match=r"models:/imdb-nbsvm/1 has no layer named 'embedding'"):
        read_embedding_source(serving_path, "models:/imdb-nbsvm/1")


def test_weight_decay_pulls_feature_weights_towards_their_start_and_survives_saving(tmp_path):
    import keras

    from seqflow.models.architectures import NBSVM_INITIAL_WEIGHT

    rng = np.random.default_rng(3)
    x_train, y_train = _toy_reviews(rng, 128)
    spread = {}
    for decay in (0.0, 0.5):
        keras.utils.set_random_seed(1)
        model = build_model("nbsvm", ModelSpec(vocab_size=18, nb_weight_decay=decay))
        set_log_count_ratios(model, x_train, y_train)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
        model.fit(x_train, y_train, batch_size=16, epochs=1, shuffle=False, verbose=0)
        if decay:
            model.save(tmp_path / "decayed.keras")
            model = keras.saving.load_model(tmp_path / "decayed.keras")
            assert model.get_layer("feature_weights").embeddings_regularizer.get_config() == {
                "strength": decay, "center": NBSVM_INITIAL_WEIGHT,
            }
        spread[decay] = float(np.abs(model.get_layer("feature_weights").get_weights()[0][2:] - NBSVM_INITIAL_WEIGHT).mean())
    # Without decay the weights move away from where they started; with it they stay much closer.
    assert spread[0.0] > 0.02 and spread[0.5] < spread[0.0] / 3, spread
