"""Quality levers: hashed bigrams, L2, spatial dropout, learning-rate schedules, tf.data input, per-architecture
settings and embedding warm starts (the registry side of warm starts is in tests/flows/test_warm_start.py)."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.sentiment.config import ArchitectureOverride, TrainingConfig
from seqflow.core.errors import SeqflowError
from seqflow.models.architectures import NGRAM_LAYER, ModelSpec, build_model, build_serving_model
from seqflow.models.text import BIGRAM_HASH_MULTIPLIER, HASH_MIXER, HASH_OFFSET, HASH_PRIME, HashedBigrams, HashedNgrams

SPEC = ModelSpec(vocab_size=30, embedding_dim=8, rnn_units=8, dense_units=8, dropout=0.0)


def mix(key: int) -> int:
    """The n-gram key scrambling, written out in Python integers."""
    return ((key % HASH_PRIME) * HASH_MIXER + HASH_OFFSET) % HASH_PRIME


def test_hashed_bigrams_follow_the_formula_and_skip_padding():
    ids = np.array([[3, 4, 5, 0, 0], [0, 0, 7, 8, 9]], dtype="int32")
    out = HashedNgrams(vocab_size=30, buckets=11)(ids).numpy()

    def bigram(a: int, b: int) -> int:
        return 30 + mix(a * BIGRAM_HASH_MULTIPLIER + b) % 11

    assert out.shape == (2, 9)
    assert out[0].tolist() == [3, 4, 5, 0, 0, bigram(3, 4), bigram(4, 5), 0, 0]
    assert out[1].tolist() == [0, 0, 7, 8, 9, 0, 0, bigram(7, 8), bigram(8, 9)]
    # Order matters: (a, b) and (b, a) are different pairs (they may only collide by chance).
    assert bigram(3, 4) != bigram(4, 3)
    assert out.min() >= 0 and out.max() < 30 + 11
    # The layer's earlier name (in models saved before trigrams) computes the same ids.
    np.testing.assert_array_equal(HashedBigrams(vocab_size=30, buckets=11)(ids).numpy(), out)


def test_hashed_bigrams_of_a_real_vocabulary_spread_over_all_buckets():
    """Every pair of 200 words in 1M buckets: nearly all distinct, as a uniform hash would have them. Before the
    scrambling, the 1_000_003 packing multiplier left (3a + b) mod 1M: 789 buckets for these 39,204 pairs."""
    words = np.arange(2, 200, dtype="int32")
    pairs = np.stack(np.meshgrid(words, words, indexing="ij"), axis=-1).reshape(-1, 2)
    out = HashedNgrams(vocab_size=20_000, buckets=1_000_000)(pairs).numpy()[:, 2]
    expected_distinct = 1_000_000 * (1 - (1 - 1 / 1_000_000) ** len(pairs))
    assert len(np.unique(out)) >= 0.99 * expected_distinct
    assert out.min() >= 20_000 and out.max() < 1_020_000


def test_models_saved_before_the_scrambling_keep_their_own_bigram_ids():
    ids = np.array([[3, 4, 5, 0]], dtype="int32")
    config = HashedNgrams(vocab_size=30, buckets=11).get_config()
    # An earlier model's saved layer config has no "hashing" key.
    legacy = HashedNgrams.from_config({key: value for key, value in config.items() if key != "hashing"})
    assert legacy.hashing == "packed"
    assert legacy(ids).numpy()[0].tolist()[4:] == [30 + (3 * BIGRAM_HASH_MULTIPLIER + 4) % 11, 30 + (4 * BIGRAM_HASH_MULTIPLIER + 5) % 11, 0]
    assert HashedNgrams.from_config(config).hashing == "mixed"
    assert HashedBigrams.from_config({key: value for key, value in config.items() if key != "hashing"}).hashing == "packed"
    with pytest.raises(ValueError, match="hashing"):
        HashedNgrams(vocab_size=30, buckets=11, hashing="md5")


def test_hashed_trigrams_follow_the_bigrams_and_skip_padding():
    ids = np.array([[3, 4, 5, 6, 0]], dtype="int32")
    out = HashedNgrams(vocab_size=30, buckets=11, max_order=3)(ids).numpy()

    def bigram(a: int, b: int) -> int:
        return 30 + mix(a * BIGRAM_HASH_MULTIPLIER + b) % 11

    def trigram(a: int, b: int, c: int) -> int:
        return 30 + mix((a * BIGRAM_HASH_MULTIPLIER + b) * BIGRAM_HASH_MULTIPLIER + c) % 11

    # 5 words, 4 pairs, 3 triples; every n-gram reaching into the padding is padding itself.
    assert out[0].tolist() == [3, 4, 5, 6, 0, bigram(3, 4), bigram(4, 5), bigram(5, 6), 0,
                               trigram(3, 4, 5), trigram(4, 5, 6), 0]
    layer = HashedNgrams(vocab_size=30, buckets=11, max_order=3)
    assert layer.compute_output_shape((None, 5)) == (None, 12)
    with pytest.raises(ValueError, match="max_order"):
        HashedNgrams(vocab_size=30, buckets=11, max_order=4)


def test_bigram_embedding_pool_tells_word_order_apart_where_unigrams_cannot():
    unigram = build_model("embedding_pool", SPEC)
    bigram = build_model("embedding_pool", ModelSpec(**{**SPEC.__dict__, "bigram_buckets": 50}))
    assert bigram.get_layer("embedding").input_dim == 30 + 50
    not_good = np.array([[5, 6, 0]], dtype="int32")
    good_not = np.array([[6, 5, 0]], dtype="int32")
    np.testing.assert_allclose(unigram(not_good).numpy(), unigram(good_not).numpy(), rtol=1e-6)
    assert not np.allclose(bigram(not_good).numpy(), bigram(good_not).numpy(), atol=1e-7)
    # Masking still holds: padding adds neither words nor bigrams.
    np.testing.assert_allclose(
        bigram(np.array([[5, 6, 7]], dtype="int32")).numpy(),
        bigram(np.array([[5, 6, 7, 0, 0, 0, 0]], dtype="int32")).numpy(),
        rtol=1e-5,
    )


def test_bigram_model_survives_a_save_and_load_inside_the_serving_model(tmp_path):
    import keras
    import tensorflow as tf

    vocabulary = ["", "[UNK]", "not", "good", "film"]
    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(vocabulary), embedding_dim=4, bigram_buckets=13))
    serving = build_serving_model(classifier, vocabulary, max_length=8, padding="post", truncation="pre")
    path = tmp_path / "serving.keras"
    serving.save(path)
    reloaded = keras.saving.load_model(path)
    texts = tf.constant([["not good film"], ["good film, not"], ["unknown words only"]])
    np.testing.assert_allclose(reloaded(texts).numpy(), serving(texts).numpy(), rtol=1e-6)
    layer = reloaded.get_layer(classifier.name).get_layer(NGRAM_LAYER)
    assert (layer.vocab_size, layer.buckets, layer.max_order) == (5, 13, 2)


def test_trigram_model_survives_a_save_and_load(tmp_path):
    import keras

    classifier = build_model("embedding_pool", ModelSpec(**{**SPEC.__dict__, "bigram_buckets": 50, "max_ngram": 3}))
    path = tmp_path / "trigram.keras"
    classifier.save(path)
    reloaded = keras.saving.load_model(path)
    ids = np.array([[5, 6, 7, 0], [5, 6, 7, 8]], dtype="int32")
    np.testing.assert_allclose(reloaded(ids).numpy(), classifier(ids).numpy(), rtol=1e-6)
    assert reloaded.get_layer(NGRAM_LAYER).max_order == 3
    # Padding adds no n-gram of any order.
    np.testing.assert_allclose(
        classifier(np.array([[5, 6, 7]], dtype="int32")).numpy(),
        classifier(np.array([[5, 6, 7, 0, 0]], dtype="int32")).numpy(),
        rtol=1e-5,
    )


def test_l2_adds_penalties_and_spatial_dropout_has_its_own_rate():
    plain = build_model("lstm", SPEC)
    plain(np.array([[3, 4]], dtype="int32"))
    assert plain.losses == []
    regularised = build_model("lstm", ModelSpec(**{**SPEC.__dict__, "l2": 1e-3, "spatial_dropout": 0.35, "dropout": 0.1}))
    regularised(np.array([[3, 4]], dtype="int32"))
    # Embedding, LSTM kernel, LSTM recurrent kernel, hidden Dense, output Dense.
    assert len(regularised.losses) == 5 and all(float(loss) > 0 for loss in regularised.losses)
    assert regularised.get_layer("embedding_dropout").rate == pytest.approx(0.35)
    assert regularised.get_layer("head_dropout").rate == pytest.approx(0.1)
    # Without spatial_dropout, the embedding dropout follows `dropout` (the profiles' earlier behaviour).
    assert build_model("lstm", ModelSpec(**{**SPEC.__dict__, "dropout": 0.4})).get_layer("embedding_dropout").rate == 0.4


def test_token_dropout_zeroes_whole_words_in_training_only_and_keeps_the_mask():
    import keras

    # Off by default: models saved before the lever have no such layer, and default builds stay the same.
    assert "token_dropout" not in [layer.name for layer in build_model("embedding_pool", SPEC).layers]
    model = build_model("embedding_pool", ModelSpec(**{**SPEC.__dict__, "token_dropout": 0.5}))
    stem = keras.Model(model.input, model.get_layer("token_dropout").output)
    ids = np.tile(np.arange(1, 29, dtype="int32"), (4, 1))
    ids[:, -4:] = 0  # padding
    keras.utils.set_random_seed(0)
    dropped = np.asarray(stem(ids, training=True))
    kept = np.asarray(stem(ids, training=False))
    zero_rows = np.all(dropped == 0.0, axis=-1)
    # Whole vectors go (every channel of a word at once), about half of them, and survivors are rescaled.
    assert np.all((dropped == 0.0).any(axis=-1) == zero_rows)
    assert 0.3 < zero_rows[:, :24].mean() < 0.7
    np.testing.assert_allclose(dropped[~zero_rows], 2.0 * kept[~zero_rows], rtol=1e-6)
    # Inference is deterministic and untouched; padding stays masked for the average.
    np.testing.assert_array_equal(kept, np.asarray(stem(ids, training=False)))
    assert model.get_layer("token_dropout").output._keras_mask is not None


def test_recurrent_input_dropout_reaches_every_recurrent_layer():
    model = build_model("stacked_rnn", ModelSpec(**{**SPEC.__dict__, "recurrent_input_dropout": 0.2}))
    assert [model.get_layer(name).dropout for name in ("simple_rnn_1", "simple_rnn_2")] == [0.2, 0.2]


def _rate(schedule, step: int) -> float:
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_learning_rate_schedules_have_the_configured_shape():
    from seqflow.sentiment.train import learning_rate_schedule, schedule_callbacks

    base = TrainingConfig(epochs=10, learning_rate=1e-2)
    assert learning_rate_schedule(base, 100) == pytest.approx(1e-2)
    cosine = TrainingConfig(epochs=10, learning_rate=1e-2, lr_schedule="cosine", warmup_epochs=2, min_learning_rate=1e-4)
    schedule = learning_rate_schedule(cosine, 100)
    assert _rate(schedule, 0) == pytest.approx(1e-4)
    assert _rate(schedule, 100) == pytest.approx((1e-4 + 1e-2) / 2, rel=1e-3)  # half-way through warmup
    assert _rate(schedule, 200) == pytest.approx(1e-2)
    assert _rate(schedule, 600) == pytest.approx(1e-4 + (1e-2 - 1e-4) / 2, rel=1e-3)  # half-way down the cosine
    assert _rate(schedule, 1000) == pytest.approx(1e-4, rel=1e-3)
    exponential = learning_rate_schedule(TrainingConfig(learning_rate=1e-2, lr_schedule="exponential", lr_decay_rate=0.5), 50)
    assert [_rate(exponential, step) for step in (0, 50, 100)] == pytest.approx([1e-2, 5e-3, 2.5e-3])
    plateau = TrainingConfig(learning_rate=1e-2, lr_schedule="plateau", lr_decay_rate=0.2, plateau_patience=3)
    assert learning_rate_schedule(plateau, 50) == pytest.approx(1e-2)
    (callback,) = schedule_callbacks(plateau)
    assert (callback.factor, callback.patience, callback.monitor) == (0.2, 3, "val_loss")
    assert schedule_callbacks(base) == []


def test_input_pipeline_shuffles_reproducibly_and_keeps_every_row():
    from seqflow.sentiment.train import input_pipeline

    x = np.arange(100, dtype="int32").reshape(50, 2)
    y = np.arange(50, dtype="int32")

    def epochs(dataset, count: int) -> list[list[int]]:
        return [np.concatenate([batch_y.numpy() for _, batch_y in dataset]).tolist() for _ in range(count)]

    first, second = epochs(input_pipeline(x, y, 8, seed=3), 2)
    again_first, again_second = epochs(input_pipeline(x, y, 8, seed=3), 2)
    assert (first, second) == (again_first, again_second)
    assert first != second and sorted(first) == list(range(50))
    assert epochs(input_pipeline(x, y, 8), 1)[0] == list(range(50))  # validation data keeps its order
    for batch_x, batch_y in input_pipeline(x, y, 8, seed=3):
        np.testing.assert_array_equal(batch_x.numpy(), x[batch_y.numpy()])  # rows stay with their labels


def test_input_pipeline_batches_equal_those_of_shuffling_the_rows_themselves():
    """Gathering shuffled indices is a speed-up only: same seed, same batches as shuffling (x, y) rows."""
    import tensorflow as tf

    from seqflow.sentiment.train import input_pipeline

    x = np.arange(300, dtype="int32").reshape(100, 3)
    y = np.arange(100, dtype="int32")
    rows = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100, seed=7, reshuffle_each_iteration=True).batch(16)
    gathered = input_pipeline(x, y, 16, seed=7)
    for _ in range(2):  # two epochs: the reshuffle agrees too
        for (rows_x, rows_y), (gathered_x, gathered_y) in zip(rows, gathered, strict=True):
            np.testing.assert_array_equal(rows_x.numpy(), gathered_x.numpy())
            np.testing.assert_array_equal(rows_y.numpy(), gathered_y.numpy())


def _toy_arrays(rows: int = 96):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, rows)
    ids = np.where(labels[:, None] == 1, rng.integers(10, 18, (rows, 6)), rng.integers(2, 10, (rows, 6))).astype("int32")
    return {"x_train": ids, "y_train": labels, "x_validation": ids[:32], "y_validation": labels[:32]}


def test_per_architecture_settings_reach_training(tmp_path):
    import keras

    from seqflow.sentiment.train import train_classifier

    training = TrainingConfig(
        epochs=3, batch_size=32, embedding_dim=8, rnn_units=8, dense_units=8, early_stopping_patience=None,
        per_architecture=(ArchitectureOverride("embedding_pool", epochs=1, bigram_buckets=40, l2=1e-4),),
    )
    pooled = train_classifier("embedding_pool", _toy_arrays(), 18, training, seed=1, output_dir=tmp_path / "pool")
    recurrent = train_classifier("simple_rnn", _toy_arrays(), 18, training, seed=1, output_dir=tmp_path / "rnn")
    assert (pooled.epochs_run, recurrent.epochs_run) == (1, 3)
    model = keras.saving.load_model(pooled.classifier_path)
    assert model.get_layer("embedding").input_dim == 18 + 40


def test_training_logs_one_line_per_epoch_instead_of_printing(tmp_path, caplog, capfd):
    from seqflow.sentiment.train import train_classifier

    training = TrainingConfig(epochs=2, batch_size=32, embedding_dim=8, dense_units=0, early_stopping_patience=None)
    with caplog.at_level("INFO", logger="seqflow"):  # the line comes from seqflow.core.progress
        train_classifier("embedding_pool", _toy_arrays(), 18, training, seed=1, output_dir=tmp_path)
    epoch_lines = [r.getMessage() for r in caplog.records if ": epoch " in r.getMessage()]
    assert [line.split(": ")[0] + ": " + line.split(": ")[1] for line in epoch_lines] == [
        "training embedding_pool: epoch 1/2", "training embedding_pool: epoch 2/2"
    ]
    assert "val_accuracy" in epoch_lines[-1]
    # Under pytest stdout is not a terminal: Keras prints no per-epoch lines that would mix with a results table.
    assert "val_accuracy" not in capfd.readouterr().out


def test_warm_start_copies_rows_by_token_and_freezes(tmp_path):
    from seqflow.sentiment.train import EmbeddingSource, apply_warm_start, train_classifier

    source_vocabulary = ["", "[UNK]", "good", "bad", "plot"]
    source = EmbeddingSource("models:/toy/1", np.arange(5 * 8, dtype="float32").reshape(5, 8), source_vocabulary)
    target_vocabulary = ["", "[UNK]", "bad", "film"] + [f"w{i}" for i in range(14)]
    model = build_model("embedding_pool", ModelSpec(vocab_size=18, embedding_dim=8))
    fresh_film_row = model.get_layer("embedding").get_weights()[0][3].copy()
    assert apply_warm_start(model, target_vocabulary, source, trainable=True) == 3  # "", [UNK], bad
    weights = model.get_layer("embedding").get_weights()[0]
    np.testing.assert_array_equal(weights[2], source.vectors[3])  # "bad": row 3 there, row 2 here
    np.testing.assert_array_equal(weights[3], fresh_film_row)
    with pytest.raises(SeqflowError, match="embedding_dim=4"):
        apply_warm_start(build_model("lstm", ModelSpec(vocab_size=18, embedding_dim=4)), target_vocabulary, source, True)
    # nbsvm has no embedding: a run-wide warm start leaves it as built instead of failing its training.
    nbsvm = build_model("nbsvm", ModelSpec(vocab_size=18))
    before = [w.copy() for w in nbsvm.get_weights()]
    assert apply_warm_start(nbsvm, target_vocabulary, source, trainable=False) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, nbsvm.get_weights()))

    training = TrainingConfig(
        epochs=2, batch_size=32, embedding_dim=8, dense_units=8, early_stopping_patience=None, warm_start_trainable=False
    )
    outcome = train_classifier(
        "embedding_pool", _toy_arrays(), 18, training, seed=1, output_dir=tmp_path,
        vocabulary=target_vocabulary, warm_start=source,
    )
    import keras

    trained = keras.saving.load_model(outcome.classifier_path).get_layer("embedding")
    assert not trained.trainable
    np.testing.assert_array_equal(trained.get_weights()[0][2], source.vectors[3])
