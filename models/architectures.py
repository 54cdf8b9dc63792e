"""The sentiment architectures of the seed experiments, one ``build_<name>`` each, and their registry.

Every builder takes a :class:`ModelSpec` and returns an uncompiled ``keras.Model`` mapping padded id sequences
``(batch, length)`` to a positive-class probability ``(batch, 1)``. Length is left open so a model serves any
padding length; with ``mask_padding`` the recurrent layers and the pooling skip padding ids, so the output does
not depend on how much padding a review has (the seeds' SimpleRNN read its last state after hundreds of
padding steps and stayed at 50%).

LSTM layers keep Keras' defaults (tanh, sigmoid, no recurrent dropout, not unrolled): that is what lets
Keras 3 use the cuDNN kernel on a GPU. cuDNN accepts masks only for right-padded batches, so GPU runs should
keep ``tokenisation.padding="post"`` (the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
from keras import layers

from seqflow.models import EmbeddedSpec, build_named


@dataclass(frozen=True)
class ModelSpec(EmbeddedSpec):
    """What a builder needs; built from the training config and the vocabulary actually adapted."""

    dense_units: int = 64
    dropout: float = 0.0
    mask_padding: bool = True
    # SpatialDropout1D rate after the embedding; None uses `dropout`.
    spatial_dropout: float | None = None
    # Fraction of whole token vectors zeroed while training (word dropout); 0 adds no layer.
    token_dropout: float = 0.0
    # Dropout on the inputs of each recurrent step.
    recurrent_input_dropout: float = 0.0
    # L2 penalty on the embedding and all kernels; 0 adds no regulariser.
    l2: float = 0.0
    # embedding_pool and nbsvm: hashed bigram buckets appended to the vocabulary; 0 is unigrams only.
    bigram_buckets: int = 0
    # With bigram_buckets: highest n-gram order hashed into those buckets (3 adds trigrams).
    max_ngram: int = 2
    # nbsvm: L2 penalty pulling each feature's weight towards their shared starting value; 0 adds none.
    nb_weight_decay: float = 0.0

    def regulariser(self) -> keras.regularizers.Regularizer | None:
        """A fresh L2 regulariser, or None when l2 is 0 (so the default model has no penalty term at all)."""
        return keras.regularizers.L2(self.l2) if self.l2 > 0 else None

    def recurrent_options(self) -> dict:
        """Keyword arguments every SimpleRNN/LSTM layer takes from the spec."""
        return {
            "dropout": self.recurrent_input_dropout,
            "kernel_regularizer": self.regulariser(),
            "recurrent_regularizer": self.regulariser(),
        }


EMBEDDING_LAYER = "embedding"
NGRAM_LAYER = "hashed_ngrams"
# nbsvm: the frozen per-feature naive-Bayes log-count ratios, which training sets from the training split before
# fitting (seqflow.sentiment.train.set_log_count_ratios), and the layer whose output is the features they are counted on.
LOG_COUNT_RATIO_LAYER = "log_count_ratios"
DISTINCT_FEATURES_LAYER = "distinct_features"
# nbsvm: every feature's learnt weight on its log-count ratio starts here, so an untrained model is naive Bayes
# scaled down: a review's summed ratios (tens) give a logit of a few units rather than a saturated sigmoid. It
# matches fast.ai's NBSVM++ effective starting weight ((0.4 + w) / 10 with w near 0).
NBSVM_INITIAL_WEIGHT = 0.04


def _embedded_ids(spec: ModelSpec, bigram_buckets: int = 0) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The shared input and embedding stem: ids (plus hashed n-gram ids) -> (optionally masked) dense vectors."""
    from seqflow.models.text import HashedNgrams

    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    features = ids
    if bigram_buckets:
        # Word ids followed by hashed word-pair (and word-triple) ids, all below vocab_size + bigram_buckets.
        features = HashedNgrams(spec.vocab_size, bigram_buckets, spec.max_ngram, name=NGRAM_LAYER)(ids)
    # One vector per vocabulary id; mask_zero marks id 0 (padding) so later layers ignore it.
    vectors = layers.Embedding(
        spec.vocab_size + bigram_buckets,
        spec.embedding_dim,
        mask_zero=spec.mask_padding,
        embeddings_regularizer=spec.regulariser(),
        name=EMBEDDING_LAYER,
    )(features)
    if spec.token_dropout:
        # Zeroes whole word (and n-gram) vectors, the same channels at once: word dropout.
        vectors = layers.Dropout(spec.token_dropout, noise_shape=(None, None, 1), name="token_dropout")(vectors)
    # Drops whole embedding channels rather than single values: neighbouring words share channels.
    rate = spec.dropout if spec.spatial_dropout is None else spec.spatial_dropout
    vectors = layers.SpatialDropout1D(rate, name="embedding_dropout")(vectors)
    return ids, vectors


def _classifier_head(features: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    """Dropout, an optional hidden Dense layer and the sigmoid output."""
    features = layers.Dropout(spec.dropout, name="head_dropout")(features)
    if spec.dense_units:
        # Hidden layer from the seeds' models (Dense(64, relu) before the output).
        features = layers.Dense(
            spec.dense_units, activation="relu", kernel_regularizer=spec.regulariser(), name="hidden"
        )(features)
    # Probability that the review is positive; float32 even under a mixed-precision policy.
    return layers.Dense(
        1, activation="sigmoid", dtype="float32", kernel_regularizer=spec.regulariser(), name="positive_probability"
    )(features)


def _reading_classifier(
    spec: ModelSpec, name: str, read: Callable[[keras.KerasTensor], keras.KerasTensor], bigram_buckets: int = 0
) -> keras.Model:
    """The embedding stem, ``read`` (the embedded review -> one feature vector) and the classifier head."""
    ids, vectors = _embedded_ids(spec, bigram_buckets)
    return keras.Model(ids, _classifier_head(read(vectors), spec), name=name)


def build_embedding_pool(spec: ModelSpec) -> keras.Model:
    """Embedding + GlobalAveragePooling1D + Dense: a bag of word (and, with bigram_buckets, word-pair) vectors."""
    # Mean over the real (unmasked) words of the review.
    average = lambda vectors: layers.GlobalAveragePooling1D(name="average_words")(vectors)  # noqa: E731
    return _reading_classifier(spec, "embedding_pool", average, spec.bigram_buckets)


def build_simple_rnn(spec: ModelSpec) -> keras.Model:
    """One SimpleRNN layer reading the review left to right; its last state summarises the review."""
    # Last state over real words only (padding is masked).
    last_state = lambda vectors: layers.SimpleRNN(spec.rnn_units, name="simple_rnn", **spec.recurrent_options())(vectors)  # noqa: E731
    return _reading_classifier(spec, "simple_rnn", last_state)


def build_stacked_rnn(spec: ModelSpec) -> keras.Model:
    """Two SimpleRNN layers; the first hands its whole sequence to the second."""

    def read(vectors: keras.KerasTensor) -> keras.KerasTensor:
        # Full sequence of states, so the second layer sees every step.
        sequence = layers.SimpleRNN(
            spec.rnn_units, return_sequences=True, name="simple_rnn_1", **spec.recurrent_options()
        )(vectors)
        # Last state of the upper layer.
        return layers.SimpleRNN(spec.rnn_units, name="simple_rnn_2", **spec.recurrent_options())(sequence)

    return _reading_classifier(spec, "stacked_rnn", read)


def build_lstm(spec: ModelSpec) -> keras.Model:
    """One LSTM layer: gated memory that keeps sentiment cues across long reviews."""
    # Default activations keep the layer cuDNN-eligible on GPUs.
    last_state = lambda vectors: layers.LSTM(spec.rnn_units, name="lstm", **spec.recurrent_options())(vectors)  # noqa: E731
    return _reading_classifier(spec, "lstm", last_state)


def build_bilstm(spec: ModelSpec) -> keras.Model:
    """A bidirectional LSTM: one pass forwards, one backwards, last states concatenated."""
    # Forward and backward LSTM over real words; outputs concatenated (2 x units).
    last_states = lambda vectors: layers.Bidirectional(  # noqa: E731
        layers.LSTM(spec.rnn_units, **spec.recurrent_options()), name="bilstm"
    )(vectors)
    return _reading_classifier(spec, "bilstm", last_states)


def build_stacked_bilstm(spec: ModelSpec) -> keras.Model:
    """Two bidirectional LSTM layers, as in the seeds' deepest model."""

    def read(vectors: keras.KerasTensor) -> keras.KerasTensor:
        # Lower bidirectional layer returns every step for the upper one.
        sequence = layers.Bidirectional(
            layers.LSTM(spec.rnn_units, return_sequences=True, **spec.recurrent_options()), name="bilstm_1"
        )(vectors)
        # Upper bidirectional layer returns its last states.
        return layers.Bidirectional(layers.LSTM(spec.rnn_units, **spec.recurrent_options()), name="bilstm_2")(sequence)

    return _reading_classifier(spec, "stacked_bilstm", read)


@keras.saving.register_keras_serializable(package="seqflow")
class L2Towards(keras.regularizers.Regularizer):
    """``strength * sum((w - center)^2)``: weight decay towards ``center`` instead of 0. On nbsvm's feature
    weights (all starting at one value) it damps what Wang & Manning's interpolation towards the mean weight
    damps: a rare n-gram's weight fitted far from the rest on a few training reviews."""

    def __init__(self, strength: float, center: float) -> None:
        self.strength, self.center = float(strength), float(center)

    def __call__(self, weights):  # noqa: ANN001, ANN204 - a tensor
        return self.strength * keras.ops.sum(keras.ops.square(weights - self.center))

    def get_config(self) -> dict:
        return {"strength": self.strength, "center": self.center}


def build_nbsvm(spec: ModelSpec) -> keras.Model:
    """NB-SVM (Wang & Manning, 2012) as a Keras model: a linear model on which words and hashed n-grams a review
    contains, each scaled by its naive-Bayes log-count ratio. The ratios come from the training split (set before
    fitting, then frozen); the model learns one weight per feature on top of them, plus a scale and a bias.
    """
    from seqflow.models.text import DistinctIds, HashedNgrams, SumOverSequence

    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    features = ids
    if spec.bigram_buckets:
        # Word ids followed by hashed word-pair (and word-triple) ids, as in embedding_pool.
        features = HashedNgrams(spec.vocab_size, spec.bigram_buckets, spec.max_ngram, name=NGRAM_LAYER)(ids)
    # Each feature once per review (presence, not counts); repeats become padding.
    distinct = DistinctIds(name=DISTINCT_FEATURES_LAYER)(features)
    rows = spec.vocab_size + spec.bigram_buckets
    # Log-count ratio per feature: zero (no evidence) until training sets it; padding's row stays zero.
    ratios = layers.Embedding(
        rows, 1, embeddings_initializer="zeros", trainable=False, name=LOG_COUNT_RATIO_LAYER
    )(distinct)
    # Learnt weight per feature on its ratio (the SVM half): features with misleading ratios get turned down.
    weights = layers.Embedding(
        rows,
        1,
        embeddings_initializer=keras.initializers.Constant(NBSVM_INITIAL_WEIGHT),
        embeddings_regularizer=(
            L2Towards(spec.nb_weight_decay, NBSVM_INITIAL_WEIGHT) if spec.nb_weight_decay else spec.regulariser()
        ),
        name="feature_weights",
    )(distinct)
    if spec.token_dropout:
        # Drops whole features while training, so the model cannot lean on a few memorised phrases.
        weights = layers.Dropout(spec.token_dropout, noise_shape=(None, None, 1), name="token_dropout")(weights)
    # Each feature's evidence: ratio times its weight.
    evidence = layers.Multiply(name="weighted_ratios")([ratios, weights])
    # The review's total evidence; padding adds 0.
    total = SumOverSequence(name="total_evidence")(evidence)
    # Probability that the review is positive: a learnt scale (starting at 1) and bias on the total.
    probability = layers.Dense(
        1, activation="sigmoid", kernel_initializer="ones", dtype="float32", name="positive_probability"
    )(total)
    return keras.Model(ids, probability, name="nbsvm")


MODEL_BUILDERS: dict[str, Callable[[ModelSpec], keras.Model]] = {
    "embedding_pool": build_embedding_pool,
    "simple_rnn": build_simple_rnn,
    "stacked_rnn": build_stacked_rnn,
    "lstm": build_lstm,
    "bilstm": build_bilstm,
    "stacked_bilstm": build_stacked_bilstm,
    "nbsvm": build_nbsvm,
}


def build_model(architecture: str, spec: ModelSpec) -> keras.Model:
    """The named architecture, or a ValueError listing the known names."""
    return build_named(MODEL_BUILDERS, architecture, spec)


def build_ensemble_classifier(
    members: Sequence[keras.Model], weights: Sequence[float] = (), bias: float = 0.0
) -> keras.Model:
    """Padded ids -> one probability from trained ``members`` (each reads the same ids): their mean, or with
    ``weights`` (one per member) the logistic stack of :class:`~seqflow.models.text.CombineProbabilities`."""
    from seqflow.models.text import CombineProbabilities

    if weights and len(weights) != len(members):
        raise ValueError(f"{len(weights)} stacking weights for {len(members)} members")
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    probabilities = layers.Concatenate(name="member_probabilities")([member(ids) for member in members])
    combined = CombineProbabilities(weights, bias, dtype="float32", name="positive_probability")(probabilities)
    return keras.Model(ids, combined, name="ensemble")


def build_serving_model(
    classifier: keras.Model,
    vocabulary: list[str],
    max_length: int,
    padding: str,
    truncation: str,
) -> keras.Model:
    """Raw review strings -> positive probability: vectoriser and padding in front of a trained classifier."""
    from seqflow.models.text import PAD_LAYER_NAME, PadAndTruncate, build_vectoriser

    texts = keras.Input(shape=(1,), dtype="string", name="text")
    # Same standardisation and vocabulary as training: ids match what the classifier learned.
    ids = build_vectoriser(len(vocabulary), vocabulary)(texts)
    # Same length and padding side as the training arrays.
    padded = PadAndTruncate(max_length, padding, truncation, name=PAD_LAYER_NAME)(ids)
    return keras.Model(texts, classifier(padded), name=f"{classifier.name}_serving")
