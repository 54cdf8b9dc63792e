"""Typed pipeline configuration: every tunable number lives here, grouped by the stage that uses it.

A run's configuration is one frozen :class:`PipelineConfig`, built from a named profile and then overridden,
in this order (later wins): the profile, ``SEQFLOW_*`` values from ``mlflow.env`` / the environment, and the
CLI (``--seed``, ``--source``, ``--set section.field=value``). Nothing is mutated: overrides return new objects.

Tasks receive only the slice they use (``config.tokenisation``, ``config.contracts``, ...), so a change to one
slice is visible in exactly the steps that depend on it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from seqflow.errors import ConfigError

PaddingSide = Literal["pre", "post"]

ALL_ARCHITECTURES: tuple[str, ...] = (
    "embedding_pool",
    "simple_rnn",
    "stacked_rnn",
    "lstm",
    "bilstm",
    "stacked_bilstm",
)


@dataclass(frozen=True)
class DataConfig:
    """Where reviews come from and how they are split."""

    # Source spec: embedded | tfds:imdb_reviews | aclimdb:PATH | csv:PATH | parquet:PATH
    source: str = "embedded"
    # Share of the training pool held out for validation (early stopping and model selection).
    validation_fraction: float = 0.1
    # Share held out for the test split when the source has no test split of its own.
    test_fraction: float = 0.2
    # Stratified subsample of the loaded rows (train and test pools alike); None keeps everything.
    limit: int | None = None
    # Keep only reviews of at most this many characters (before sampling); None keeps all lengths.
    max_review_chars: int | None = None
    # TFDS data_dir and manual_dir (a folder holding aclImdb_v1.tar.gz, for machines without internet).
    tfds_data_dir: str | None = None
    tfds_manual_dir: str | None = None


@dataclass(frozen=True)
class TokenisationConfig:
    """The TextVectorization layer and padding; the tokenised contract derives its bounds from this."""

    # Vocabulary size including the padding id 0 and the out-of-vocabulary id 1.
    vocab_size: int = 20_000
    # Every padded row has exactly this many ids.
    max_length: int = 250
    # Side that receives padding ids. "post" keeps LSTM masks cuDNN-eligible on GPUs.
    padding: PaddingSide = "post"
    # Side that loses tokens when a review is longer than max_length.
    truncation: PaddingSide = "post"


@dataclass(frozen=True)
class ContractConfig:
    """Bounds of the data contracts that are not implied by the tokenisation settings."""

    # The share of positive labels must lie within 0.5 +/- this band in every split.
    class_balance_band: float = 0.05
    # At most this share of test reviews may also appear verbatim in train (IMDB has ~120 such duplicates).
    max_train_test_overlap: float = 0.01
    # Mean share of out-of-vocabulary ids among non-padding ids.
    max_oov_rate: float = 0.10
    # Share of rows that are padding only (the review had no in-vocabulary token at all).
    max_all_padding_rows: float = 0.001
    # How many failing examples an error message shows.
    examples_in_message: int = 5


@dataclass(frozen=True)
class TrainingConfig:
    """Which architectures to train and how; read by models/ builders and the training task."""

    architectures: tuple[str, ...] = ALL_ARCHITECTURES
    epochs: int = 5
    batch_size: int = 64
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 1e-3
    embedding_dim: int = 64
    rnn_units: int = 64
    # Width of the hidden Dense layer before the output; 0 leaves it out.
    dense_units: int = 64
    dropout: float = 0.2
    # Mask padding ids so recurrent layers skip them (the seeds' SimpleRNN failed without this).
    mask_padding: bool = True
    # Stop when validation loss has not improved for this many epochs; None trains all epochs.
    early_stopping_patience: int | None = 2
    restore_best_weights: bool = True
    # Gradient clipping by global norm; None disables it.
    clipnorm: float | None = 1.0
    # Keras dtype policy while training: mixed_float16 speeds up GPUs with tensor cores, mixed_bfloat16 newer
    # CPUs/TPUs; the output layer always computes in float32 so probabilities and the loss stay precise.
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    # Save the training state after every epoch (under artifacts_dir/checkpoints/) so that `seqflow run` after a
    # crash resumes an interrupted training from its last completed epoch; the folder is deleted once it is done.
    checkpoint: bool = True


@dataclass(frozen=True)
class PromotionConfig:
    """Gates for moving the registry's champion alias."""

    # A challenger must beat the champion's test accuracy (same test data) by at least this much.
    min_improvement: float = 0.0
    # A challenger below this test accuracy is never promoted.
    accuracy_floor: float = 0.70


@dataclass(frozen=True)
class PipelineConfig:
    """One run's full configuration."""

    profile: str = "quick"
    seed: int = 42
    # Where datasets, vocabularies, padded arrays and contract reports are written.
    artifacts_dir: str = "seqflow_artifacts"
    data: DataConfig = field(default_factory=DataConfig)
    tokenisation: TokenisationConfig = field(default_factory=TokenisationConfig)
    contracts: ContractConfig = field(default_factory=ContractConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)

    def to_flat_dict(self) -> dict[str, Any]:
        """``{"section.field": value}`` for logging as MLflow params."""
        flat: dict[str, Any] = {}
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, dict):
                flat.update({f"{name}.{key}": inner for key, inner in value.items()})
            else:
                flat[name] = value
        return flat


RunnerKind = Literal["sequential", "dask"]
RUNNERS: tuple[str, ...] = typing.get_args(RunnerKind)
# Worker processes of a local Dask cluster when ``--workers`` is not given.
DEFAULT_DASK_WORKERS = 2


@dataclass(frozen=True)
class ExecutionConfig:
    """Where ``seqflow run`` trains the architectures; chosen on the command line, separate from
    :class:`PipelineConfig` because it changes where the steps run, never what they compute.

    ``sequential`` (the default) trains one architecture after another in this process. ``dask`` trains them
    in parallel with prefect-dask: on the scheduler at ``dask_address``, or on a local cluster of ``workers``
    processes (one task thread each) started for the run and stopped after it.
    """

    runner: RunnerKind = "sequential"
    # A running Dask scheduler, e.g. tcp://10.0.0.5:8786; its workers need seqflow installed and must reach
    # the Prefect API and the MLflow store. None: start a local cluster (dask runner only).
    dask_address: str | None = None
    # Worker processes of the local cluster; None: DEFAULT_DASK_WORKERS.
    workers: int | None = None
    # TensorFlow intra-op and inter-op threads in each local worker (TF_NUM_INTRAOP_THREADS /
    # TF_NUM_INTEROP_THREADS), so N workers do not each claim every core. None: the cores divided by the workers.
    tf_threads: int | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.runner not in RUNNERS:
            problems.append(f"runner must be one of {list(RUNNERS)}, got {self.runner!r}")
        elif self.runner != "dask":
            given = [
                flag
                for flag, value in (
                    ("--dask-address", self.dask_address),
                    ("--workers", self.workers),
                    ("--tf-threads", self.tf_threads),
                )
                if value is not None
            ]
            if given:
                problems.append(f"{' and '.join(given)} given without --runner dask")
        elif self.dask_address is not None:
            if not self.dask_address.strip():
                problems.append("--dask-address may not be empty")
            if self.workers is not None or self.tf_threads is not None:
                problems.append(
                    f"--workers and --tf-threads size a local cluster; the scheduler at {self.dask_address} "
                    "has its own workers"
                )
        if self.workers is not None and self.workers < 1:
            problems.append(f"--workers must be at least 1, got {self.workers}")
        if self.tf_threads is not None and self.tf_threads < 1:
            problems.append(f"--tf-threads must be at least 1, got {self.tf_threads}")
        if problems:
            raise ConfigError("invalid execution settings: " + "; ".join(problems))

    @property
    def local_workers(self) -> int:
        """Worker processes of the local cluster."""
        return self.workers or DEFAULT_DASK_WORKERS

    def local_tf_threads(self, cpu_count: int | None) -> int:
        """TensorFlow threads per local worker: as set, or this machine's cores shared out among the workers."""
        return self.tf_threads or max(1, (cpu_count or 1) // self.local_workers)


def _profile(name: str, **sections: Any) -> PipelineConfig:
    return PipelineConfig(profile=name, **sections)


# Profiles: named, reviewable starting points. Seed profiles reproduce the settings of the experiments in
# ../shared/seeds so their numbers can be re-measured inside the pipeline.
PROFILES: dict[str, PipelineConfig] = {
    # The default: under 10 minutes on 2 cores for all six architectures. A stratified 6,000-review sample,
    # 200 ids per review keeping each review's ending (where the verdict usually is), and up to 6 epochs:
    # SimpleRNN only starts to learn after its third epoch, so patience 3 and dropout 0.4 keep it going.
    "quick": _profile(
        "quick",
        data=DataConfig(limit=6_000),
        tokenisation=TokenisationConfig(vocab_size=10_000, max_length=200, truncation="pre"),
        training=TrainingConfig(epochs=6, dropout=0.4, early_stopping_patience=3),
    ),
    # All 25,000 reviews (or the source's full splits), longer sequences and more epochs.
    "full": _profile(
        "full",
        tokenisation=TokenisationConfig(vocab_size=20_000, max_length=400, truncation="pre"),
        training=TrainingConfig(epochs=10, dropout=0.4, early_stopping_patience=3),
    ),
    # Seed 000: TFDS subwords8k (8,185 ids), Embedding(64) -> BiLSTM(64) -> Dense(64) -> sigmoid, Adam,
    # batch 64, 3 epochs, no length cap (we cap at 500 words). Its numbers were only in images.
    "seed-000-bilstm": _profile(
        "seed-000-bilstm",
        tokenisation=TokenisationConfig(vocab_size=8_185, max_length=500),
        contracts=ContractConfig(max_oov_rate=0.15),
        training=TrainingConfig(
            architectures=("bilstm",), epochs=3, batch_size=64, embedding_dim=64, rnn_units=64,
            dense_units=64, dropout=0.0, early_stopping_patience=None, clipnorm=None,
        ),
    ),
    # Seed 001: 10k words, 80 tokens pre-padded/pre-truncated, Embedding(100) -> 2 x SimpleRNN(64, dropout 0.2),
    # Adam lr 1e-4, batch 1024, 20 epochs; ~0.50 for 8 epochs, then 0.796 final / 0.808 best validation.
    "seed-001-stacked-rnn": _profile(
        "seed-001-stacked-rnn",
        tokenisation=TokenisationConfig(vocab_size=10_000, max_length=80, padding="pre", truncation="pre"),
        contracts=ContractConfig(max_oov_rate=0.15),
        training=TrainingConfig(
            architectures=("stacked_rnn",), epochs=20, batch_size=1024, learning_rate=1e-4, embedding_dim=100,
            rnn_units=64, dense_units=0, dropout=0.2, early_stopping_patience=None, clipnorm=None,
        ),
    ),
    # Seed 002: 10k words, 500 tokens pre-padded, Embedding(32) -> SimpleRNN(32) -> sigmoid, RMSprop, batch 10;
    # stopped by hand after epoch 1 at 0.816 validation accuracy.
    "seed-002-simple-rnn": _profile(
        "seed-002-simple-rnn",
        tokenisation=TokenisationConfig(vocab_size=10_000, max_length=500, padding="pre", truncation="pre"),
        contracts=ContractConfig(max_oov_rate=0.15),
        training=TrainingConfig(
            architectures=("simple_rnn",), epochs=1, batch_size=10, optimizer="rmsprop", embedding_dim=32,
            rnn_units=32, dense_units=0, dropout=0.0, early_stopping_patience=None, clipnorm=None,
        ),
    ),
    # Seed 004 (shared): 10k words, 500 tokens post-padded and pre-truncated, Embedding(16), Adam, 30 epochs.
    # Embedding -> GlobalAveragePooling1D -> Dense(64) -> sigmoid, batch 128: test 0.859, overfit.
    "seed-004-embedding": _profile(
        "seed-004-embedding",
        tokenisation=TokenisationConfig(vocab_size=10_000, max_length=500, padding="post", truncation="pre"),
        contracts=ContractConfig(max_oov_rate=0.15),
        training=TrainingConfig(
            architectures=("embedding_pool",), epochs=30, batch_size=128, embedding_dim=16, dense_units=64,
            dropout=0.0, early_stopping_patience=None, clipnorm=None,
        ),
    ),
    # Embedding -> SimpleRNN(64) -> Dense(64) -> sigmoid, batch 512: test 0.499 (no masking: chance level).
    "seed-004-simple-rnn": _profile(
        "seed-004-simple-rnn",
        tokenisation=TokenisationConfig(vocab_size=10_000, max_length=500, padding="post", truncation="pre"),
        contracts=ContractConfig(max_oov_rate=0.15),
        training=TrainingConfig(
            architectures=("simple_rnn",), epochs=30, batch_size=512, embedding_dim=16, rnn_units=64,
            dense_units=64, dropout=0.0, mask_padding=False, early_stopping_patience=None, clipnorm=None,
        ),
    ),
    # Embedding -> BiLSTM(64, sequences) -> BiLSTM(64) -> Dense(64) -> sigmoid, batch 512: test 0.844, overfit.
    "seed-004-stacked-bilstm": _profile(
        "seed-004-stacked-bilstm",
        tokenisation=TokenisationConfig(vocab_size=10_000, max_length=500, padding="post", truncation="pre"),
        contracts=ContractConfig(max_oov_rate=0.15),
        training=TrainingConfig(
            architectures=("stacked_bilstm",), epochs=30, batch_size=512, embedding_dim=16, rnn_units=64,
            dense_units=64, dropout=0.0, early_stopping_patience=None, clipnorm=None,
        ),
    ),
}

DEFAULT_PROFILE = "quick"


def get_profile(name: str) -> PipelineConfig:
    """The named profile, or a :class:`ConfigError` listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(f"unknown profile {name!r}; known profiles: {known}") from None


def _section_names(config: PipelineConfig) -> set[str]:
    return {f.name for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))}


def _coerce(raw: Any, annotation: Any, key: str) -> Any:
    """Turn a string from the CLI or an env file into the annotated type; pass typed values through."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if isinstance(raw, str) and raw.strip().lower() in ("none", "null", ""):
            if type(None) in args:
                return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(raw, non_none[0], key)
    if raw is None:
        raise ConfigError(f"{key} may not be empty")
    if origin is Literal:
        if raw not in args:
            raise ConfigError(f"{key} must be one of {list(args)}, got {raw!r}")
        return raw
    if origin is tuple:
        items = raw if isinstance(raw, (list, tuple)) else [s.strip() for s in str(raw).split(",") if s.strip()]
        return tuple(_coerce(item, args[0], key) for item in items)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {raw!r}")
    if annotation in (int, float, str):
        try:
            return annotation(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {annotation.__name__}, got {raw!r}") from None
    raise ConfigError(f"{key} has a type seqflow cannot set from text: {annotation!r}")


def with_overrides(config: PipelineConfig, overrides: Mapping[str, Any]) -> PipelineConfig:
    """A new config with ``{"section.field" or "field": value}`` applied; values may be strings.

    Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key.
    """
    top_hints = typing.get_type_hints(PipelineConfig)
    sections = _section_names(config)
    section_changes: dict[str, dict[str, Any]] = {}
    top_changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        section, _, name = key.partition(".")
        if not name:
            if key not in top_hints or key in sections:
                raise ConfigError(f"unknown setting {key!r}; use section.field, e.g. tokenisation.max_length")
            top_changes[key] = _coerce(raw, top_hints[key], key)
            continue
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r} in {key!r}; sections: {sorted(sections)}")
        section_obj = getattr(config, section)
        hints = typing.get_type_hints(type(section_obj))
        if name not in hints:
            raise ConfigError(f"unknown setting {key!r}; {section} has: {sorted(hints)}")
        section_changes.setdefault(section, {})[name] = _coerce(raw, hints[name], key)
    replaced = {
        section: dataclasses.replace(getattr(config, section), **changes)
        for section, changes in section_changes.items()
    }
    new_config = dataclasses.replace(config, **top_changes, **replaced)
    validate_config(new_config)
    return new_config


def validate_config(config: PipelineConfig) -> None:
    """Reject settings that would fail deep inside Keras or split into empty sets."""
    problems: list[str] = []
    data, tok, train = config.data, config.tokenisation, config.training
    if not 0.0 < data.validation_fraction < 0.5:
        problems.append(f"data.validation_fraction must be in (0, 0.5), got {data.validation_fraction}")
    if not 0.0 < data.test_fraction < 0.5:
        problems.append(f"data.test_fraction must be in (0, 0.5), got {data.test_fraction}")
    if data.limit is not None and data.limit < 20:
        problems.append(f"data.limit must be at least 20 rows, got {data.limit}")
    if tok.vocab_size < 3:
        problems.append(f"tokenisation.vocab_size must be at least 3 (padding, OOV, one word), got {tok.vocab_size}")
    if tok.max_length < 1:
        problems.append(f"tokenisation.max_length must be positive, got {tok.max_length}")
    unknown = [a for a in train.architectures if a not in ALL_ARCHITECTURES]
    if unknown:
        problems.append(f"unknown architectures {unknown}; known: {list(ALL_ARCHITECTURES)}")
    if train.epochs < 1 or train.batch_size < 1 or train.dense_units < 0:
        problems.append("training.epochs and training.batch_size must be positive, training.dense_units not negative")
    if not 0.0 <= train.dropout < 1.0:
        problems.append(f"training.dropout must be in [0, 1), got {train.dropout}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


def resolve_pipeline_config(
    profile: str,
    environment_overrides: Mapping[str, Any] | None = None,
    explicit_overrides: Mapping[str, Any] | None = None,
) -> PipelineConfig:
    """The profile, then ``SEQFLOW_*`` overrides from mlflow.env / the environment, then explicit ones."""
    merged = {**dict(environment_overrides or {}), **dict(explicit_overrides or {})}
    return with_overrides(get_profile(profile), merged)


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["a.b=1", "c=2"]`` from ``--set`` flags into a dict, rejecting items without ``=``."""
    parsed: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects section.field=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed
