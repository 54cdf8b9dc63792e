"""Training: compile and fit one architecture on padded ids. Plain Keras; tracking arrives as a callback."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from seqflow.sentiment.config import TrainingConfig
from seqflow.core.fitting import EpochCallback, FitOutcome, build_optimizer, resumable_fit, seed_everything, training_fingerprint_of

logger = logging.getLogger(__name__)

# nbsvm: the count added to every feature in each class before taking ratios (Wang & Manning's alpha = 1), so a
# feature seen in one class only gets a large but finite ratio.
NB_SMOOTHING = 1.0
# Reviews turned into features at a time while counting them for the log-count ratios.
NB_COUNT_BATCH = 1024


@dataclass(frozen=True)
class TrainingOutcome(FitOutcome):
    """What fitting produced: the saved classifier (with the fit's history and timings)."""

    classifier_path: Path
    # Training rows the fit read (training.max_train_rows may cap them); 0 where not recorded.
    train_rows: int = field(default=0, kw_only=True)


def learning_rate_schedule(training: TrainingConfig, steps_per_epoch: int):  # noqa: ANN201 - float or a schedule
    """The optimizer's learning rate: a number (constant, plateau) or a per-step Keras schedule.

    ``plateau`` starts constant; :func:`schedule_callbacks` lowers it when validation loss stalls.
    """
    import keras

    if training.lr_schedule == "cosine":
        warmup_steps = training.warmup_epochs * steps_per_epoch
        # With warmup, Keras ramps linearly from initial_learning_rate to warmup_target first.
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=training.min_learning_rate if warmup_steps else training.learning_rate,
            decay_steps=max(training.epochs * steps_per_epoch - warmup_steps, 1),
            alpha=training.min_learning_rate / training.learning_rate,
            warmup_target=training.learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    if training.lr_schedule == "exponential":
        # Multiplied by lr_decay_rate once per epoch, smoothly in between.
        return keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate, decay_steps=steps_per_epoch, decay_rate=training.lr_decay_rate
        )
    return training.learning_rate


def schedule_callbacks(training: TrainingConfig) -> list:
    """Callbacks that belong to the learning-rate schedule (only ``plateau`` needs one)."""
    import keras

    if training.lr_schedule != "plateau":
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=training.lr_decay_rate,
            patience=training.plateau_patience,
            min_lr=training.min_learning_rate,
        )
    ]


def make_optimizer(training: TrainingConfig, steps_per_epoch: int = 1):  # noqa: ANN201 - a keras Optimizer
    """The sentiment models' optimizer, with the configured learning-rate schedule."""
    return build_optimizer(training.optimizer, learning_rate_schedule(training, steps_per_epoch), training.clipnorm)


def model_spec(training: TrainingConfig, vocab_size: int):  # noqa: ANN201 - a ModelSpec
    """The builders' view of one architecture's (already resolved) training settings."""
    from seqflow.models.architectures import ModelSpec

    # Every ModelSpec field except the vocabulary size is a TrainingConfig field of the same name.
    shared = {f.name: getattr(training, f.name) for f in dataclasses.fields(ModelSpec) if f.name != "vocab_size"}
    return ModelSpec(vocab_size=vocab_size, **shared)


def input_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = None):  # noqa: ANN201
    """A ``tf.data`` pipeline over in-memory arrays: seeded reshuffling each epoch (training only), batches,
    and prefetching so the next batch is prepared on another core while the current one trains.

    Row indices are shuffled and batched, and each batch is gathered in one op: shuffling the rows themselves
    copies every row through the shuffle buffer one by one (3x slower on 16,000 x 500 ids). tf.data's shuffle
    draws the same permutation whatever the elements are, so the batches are exactly those of shuffling rows.
    """
    import tensorflow as tf

    rows, labels = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    indices = tf.data.Dataset.range(len(x))
    if seed is not None:
        # A full-size buffer is a true shuffle; the seed makes every epoch's order reproducible.
        indices = indices.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(
        lambda batch: (tf.gather(rows, batch), tf.gather(labels, batch)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return batches.prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class EmbeddingSource:
    """The embedding of a trained model and the token of each of its rows (for warm starts)."""

    model_uri: str
    vectors: np.ndarray
    vocabulary: list[str]


def read_embedding_source(serving_model_path: Path, model_uri: str) -> EmbeddingSource:
    """The embedding rows and vocabulary of a saved raw-text serving model (vectoriser + classifier)."""
    import keras

    from seqflow.core.errors import SeqflowError
    from seqflow.models.architectures import EMBEDDING_LAYER

    import seqflow.models.text  # noqa: F401 - registers the custom layers before loading
    import seqflow.core.optimizers  # noqa: F401 - registers LazyAdam: a classifier compiled with it is nested inside

    serving = keras.saving.load_model(serving_model_path)
    vectorisers = [layer for layer in serving.layers if isinstance(layer, keras.layers.TextVectorization)]
    classifiers = [layer for layer in serving.layers if isinstance(layer, keras.Model)]
    if len(vectorisers) != 1 or len(classifiers) != 1:
        raise SeqflowError(f"warm start: {model_uri} is not a seqflow serving model (vectoriser + classifier)")
    try:
        embedding = classifiers[0].get_layer(EMBEDDING_LAYER)
    except ValueError:
        raise SeqflowError(f"warm start: the classifier of {model_uri} has no layer named {EMBEDDING_LAYER!r}") from None
    return EmbeddingSource(
        model_uri=model_uri,
        vectors=np.asarray(embedding.get_weights()[0]),
        vocabulary=[str(token) for token in vectorisers[0].get_vocabulary()],
    )


def apply_warm_start(model, vocabulary: list[str], source: EmbeddingSource, trainable: bool) -> int:  # noqa: ANN001
    """Copy ``source``'s rows into ``model``'s embedding wherever the token is shared; returns rows copied.

    Rows are matched by token, not by id, so the two vocabularies may differ in order and size; tokens the
    source does not know keep their fresh initialisation, as do hashed bigram rows. ``trainable=False``
    freezes the embedding (set before compiling, so the optimizer leaves it alone). A model without an embedding
    (nbsvm) is left as it is: 0 rows copied.
    """
    from seqflow.core.errors import SeqflowError
    from seqflow.models.architectures import EMBEDDING_LAYER

    try:
        embedding = model.get_layer(EMBEDDING_LAYER)
    except ValueError:
        # nbsvm learns one weight per feature, no embedding: the run's warm start is for the other models.
        logger.info("warm start: %s has no embedding layer, so %s does not apply to it", model.name, source.model_uri)
        return 0
    matrix = np.array(embedding.get_weights()[0])
    if matrix.shape[1] != source.vectors.shape[1]:
        raise SeqflowError(
            f"warm start: {source.model_uri} has {source.vectors.shape[1]}-dimensional embeddings but this model "
            f"uses training.embedding_dim={matrix.shape[1]}; set training.embedding_dim={source.vectors.shape[1]}"
        )
    # Ids are positions in each vocabulary; only the word rows of the source (not its bigram rows) have tokens.
    source_rows = {token: row for row, token in enumerate(source.vocabulary[: source.vectors.shape[0]])}
    copied = 0
    for row, token in enumerate(vocabulary[: matrix.shape[0]]):
        source_row = source_rows.get(token)
        if source_row is not None:
            matrix[row] = source.vectors[source_row]
            copied += 1
    if copied == 0:
        raise SeqflowError(f"warm start: {source.model_uri} shares no token with this vocabulary")
    embedding.set_weights([matrix])
    embedding.trainable = trainable
    logger.info("warm start: %d of %d embedding rows from %s (%s)", copied, len(vocabulary), source.model_uri,
                "trainable" if trainable else "frozen")
    return copied


def log_count_ratios(positive_counts: np.ndarray, negative_counts: np.ndarray, smoothing: float = NB_SMOOTHING) -> np.ndarray:
    """Naive-Bayes log-count ratio per feature: log of (share of positive reviews' feature occurrences) over
    (share of negative reviews'), both smoothed; row 0 (padding) is 0, so padding is never evidence."""
    positive = np.asarray(positive_counts, dtype=np.float64) + smoothing
    negative = np.asarray(negative_counts, dtype=np.float64) + smoothing
    ratios = np.log((positive / positive.sum()) / (negative / negative.sum()))
    ratios[0] = 0.0
    return ratios


def set_log_count_ratios(model, x_train: np.ndarray, y_train: np.ndarray) -> bool:  # noqa: ANN001 - a keras.Model
    """For an nbsvm model, count in how many positive and negative training reviews each feature occurs (as the
    model itself extracts features, n-gram hashing included) and set its frozen log-count ratios; other models
    are left alone. Returns whether ratios were set. Only the training split is counted: the validation split
    stays unseen for early stopping, the test split for evaluation."""
    import keras

    from seqflow.models.architectures import DISTINCT_FEATURES_LAYER, LOG_COUNT_RATIO_LAYER

    try:
        ratio_layer = model.get_layer(LOG_COUNT_RATIO_LAYER)
    except ValueError:
        return False
    features = keras.Model(model.input, model.get_layer(DISTINCT_FEATURES_LAYER).output)
    rows = ratio_layer.input_dim
    counts = {label: np.zeros(rows, dtype=np.int64) for label in (0, 1)}
    labels = np.asarray(y_train).astype(np.int64).ravel()
    for start in range(0, len(x_train), NB_COUNT_BATCH):
        ids = np.asarray(features(x_train[start : start + NB_COUNT_BATCH]))
        for label, count in counts.items():
            count += np.bincount(ids[labels[start : start + NB_COUNT_BATCH] == label].ravel(), minlength=rows)
    ratios = log_count_ratios(counts[1], counts[0])
    ratio_layer.set_weights([ratios.reshape(rows, 1).astype(np.float32)])
    logger.info(
        "nbsvm: log-count ratios of %d features seen in %d training reviews (range %.2f to %.2f)",
        int(np.count_nonzero(counts[0][1:] + counts[1][1:])), len(x_train), ratios.min(), ratios.max(),
    )
    return True


def stratified_rows(y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Indices (in their original order) of at most ``max_rows`` rows of ``y``: each label's share kept (rounded),
    the rows drawn with ``seed``, so the same seed and limit always pick the same rows. All rows when
    ``max_rows`` is None or not below ``len(y)``."""
    labels = np.asarray(y).astype(np.int64).ravel()
    if max_rows is None or max_rows >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    positives, negatives = (rng.permutation(np.flatnonzero(labels == value)) for value in (1, 0))
    wanted = round(max_rows * len(positives) / len(labels))
    # At least one row of each label the split has, and never more rows of a label than there are.
    wanted = min(max(wanted, min(1, len(positives))), max_rows - min(1, len(negatives)))
    wanted = min(max(wanted, max_rows - len(negatives)), len(positives))
    return np.sort(np.concatenate([positives[:wanted], negatives[: max_rows - wanted]]))


def training_subset(arrays: dict[str, np.ndarray], max_rows: int | None, seed: int) -> dict[str, np.ndarray]:
    """``arrays`` with ``x_train``/``y_train`` cut to :func:`stratified_rows`; validation and test untouched."""
    rows = stratified_rows(arrays["y_train"], max_rows, seed)
    if len(rows) == len(arrays["y_train"]):
        return arrays
    return {**arrays, "x_train": arrays["x_train"][rows], "y_train": arrays["y_train"][rows]}


def training_fingerprint(array_digest: str, vocab_size: int, architecture: str, training: TrainingConfig, seed: int) -> str:
    """Names one training: the same padded arrays, architecture, training settings and seed give the same
    fingerprint, so a re-run after a crash finds the checkpoint of the interrupted training and nothing else.

    ``training`` is resolved for ``architecture`` first: other architectures' overrides,
    ``training.architectures`` (which other models the run trains) and ``training.checkpoint`` do not change
    this model's training and are left out.
    """
    settings = {key: value for key, value in training.settings_of(architecture).items() if key != "checkpoint"}
    return training_fingerprint_of(
        {"arrays": array_digest, "vocab_size": vocab_size, "architecture": architecture, "training": settings, "seed": seed}
    )


def train_classifier(
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    seed: int,
    output_dir: Path,
    on_epoch_end: EpochCallback | None = None,
    *,
    vocabulary: list[str] | None = None,
    warm_start: EmbeddingSource | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainingOutcome:
    """Fit ``architecture`` on ``x_train`` with ``x_validation`` for early stopping; save it as ``.keras``.

    ``training``'s per-architecture overrides for ``architecture`` apply, ``max_train_rows`` included (a seeded,
    stratified sample of the training rows; see :func:`training_subset`). ``warm_start`` (with the
    ``vocabulary`` of the arrays) initialises the embedding before fitting.

    With ``checkpoint_dir``, the state after every epoch is saved there, and a training that was interrupted
    (same folder, see :func:`training_fingerprint`) resumes after its last completed epoch: ``on_epoch_end`` is
    first called again for the epochs already done, and the outcome covers all epochs. The folder is deleted
    once the model is saved. The test split is not touched here: evaluation uses it once, after training.
    """
    import keras

    from seqflow.core.divergence import stop_on_non_finite_loss

    if warm_start is not None and vocabulary is None:
        raise ValueError("a warm start needs the vocabulary of the training arrays")
    resolved = training.for_architecture(architecture)
    arrays = training_subset(arrays, resolved.max_train_rows, seed)
    seed_everything(seed)
    with dtype_policy(resolved.precision):
        steps_per_epoch = math.ceil(len(arrays["x_train"]) / resolved.batch_size)
        model = compiled_model(architecture, arrays, vocab_size, resolved, steps_per_epoch, vocabulary, warm_start)
        early_stopping = (
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=resolved.early_stopping_patience,
                restore_best_weights=resolved.restore_best_weights,
            )
            if resolved.early_stopping_patience is not None
            else None
        )

        def rebuild_model():  # noqa: ANN202 - a Keras model
            # Start again from the same initial weights as a fresh training.
            seed_everything(seed)
            return compiled_model(architecture, arrays, vocab_size, resolved, steps_per_epoch, vocabulary, warm_start)

        def callbacks_before_checkpoint(resumed_from_epoch: int) -> list:
            # Order matters: a diverged epoch raises before anything else sees it, and the checkpoint (after these)
            # reads early stopping's state after it changed.
            callbacks = [stop_on_non_finite_loss(architecture, resolved.learning_rate, resumed_from_epoch), *schedule_callbacks(resolved)]
            return callbacks + ([early_stopping] if early_stopping is not None else [])

        def fit_inputs() -> tuple[tuple, dict]:
            training_rows = input_pipeline(arrays["x_train"], arrays["y_train"], resolved.batch_size, seed=seed)
            validation = input_pipeline(arrays["x_validation"], arrays["y_validation"], resolved.batch_size)
            # input_pipeline already reshuffles the training rows every epoch, with the run's seed.
            return (training_rows,), {"validation_data": validation, "shuffle": False}

        fit = resumable_fit(
            architecture, model, rebuild_model, early_stopping, checkpoint_dir, resolved.restore_best_weights,
            resolved.epochs, callbacks_before_checkpoint, fit_inputs, output_dir, on_epoch_end,
            epoch_metrics=lambda logs: {k: float(v) for k, v in (logs or {}).items()},
            stopped_note=" (early stopping had already ended it)",
        )
    return TrainingOutcome(
        architecture=architecture,
        classifier_path=fit.model_path,
        history=fit.checkpoint.history(),
        epochs_run=len(fit.checkpoint.records),
        seconds=fit.checkpoint.seconds,
        resumed_from_epoch=fit.resumed_from_epoch,
        train_rows=len(arrays["x_train"]),
    )


@contextlib.contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Keras' dtype policy set to ``precision`` inside the block and restored after it: the policy is global in
    Keras, and each model (a first fit, a refit) sets its own."""
    import keras

    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def compiled_model(  # noqa: ANN201 - a keras.Model
    architecture: str,
    arrays: dict[str, np.ndarray],
    vocab_size: int,
    training: TrainingConfig,
    steps_per_epoch: int,
    vocabulary: list[str] | None = None,
    warm_start: EmbeddingSource | None = None,
):
    """A fresh ``architecture``, compiled; nbsvm's log-count ratios counted on ``arrays["x_train"]``."""
    from seqflow.models.architectures import build_model

    model = build_model(architecture, model_spec(training, vocab_size))
    set_log_count_ratios(model, arrays["x_train"], arrays["y_train"])
    if warm_start is not None:
        apply_warm_start(model, vocabulary, warm_start, training.warm_start_trainable)
    model.compile(optimizer=make_optimizer(training, steps_per_epoch), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def export_serving_model(
    classifier_path: Path, vocabulary: list[str], max_length: int, padding: str, truncation: str, output_path: Path
) -> Path:
    """Save the raw-text model: vectoriser + padding + the trained classifier, as one ``.keras`` file."""
    import keras

    import seqflow.core.optimizers  # noqa: F401 - registers LazyAdam (the classifier may be compiled with it)
    from seqflow.models.architectures import build_serving_model

    classifier = keras.saving.load_model(classifier_path)
    serving = build_serving_model(classifier, vocabulary, max_length, padding, truncation)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    serving.save(output_path)
    return output_path
