"""The character-model pipeline's steps, one Prefect task each: load_text, check_text, encode, train, evaluate,
register. The same shape as :mod:`seqflow.tasks.sentiment`: the decorated function is the step, its name is
its Prefect task name and its ``seqflow charlm rerun`` name, and its cache declaration sits above it.

Every task takes and returns paths, digests and run ids (CharSplitFiles, CharEncodedData, ...), never live
text or models, so the cache can skip it, and any worker can run it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefect import task
from prefect.runtime import flow_run

from seqflow.charlm.cache_checks import char_encoded_problem, char_source_fingerprint, char_split_files_problem
from seqflow.charlm.contracts import validate_char_splits
from seqflow.charlm.corpus import char_baselines
from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel, dataset_tags
from seqflow.charlm.sources import load_char_source
from seqflow.charlm.steps import register_and_promote_charlm
from seqflow.charlm.text import (
    CHAR_SPLITS,
    UNKNOWN_ID,
    CharEncodedData,
    CharSplitFiles,
    encode_char_splits,
    load_char_ids,
    load_char_vocabulary,
    read_char_split,
    write_char_splits,
)
from seqflow.charlm.config import CharContractConfig, CharDataConfig, CharLMConfig
from seqflow.core.caching import PipelineCache, config_slice, file_digest, output_check, registration_inputs, split_digests, store_parts
from seqflow.core.caching import evaluated_problem, registration_problem, report_problem, split_contract_key, trained_problem
from seqflow.core.settings import TrackingSettings
from seqflow.core.contracts import ContractReport, raise_on_failure
from seqflow.core.lineage import log_split_inputs, measured_on
from seqflow.core.training_runs import log_fit_outcome, start_architecture_run, tag_training
from seqflow.core.records import carried_over
from seqflow.core.registry import RegistrationOutcome
from seqflow.core.tracking import Tracker
from seqflow.tasks.retry import retry_unless_bad_input

# Each step's cache key recipe: (identity in summaries, inputs by content, the config it uses).
Recipe = tuple[str, dict[str, str], dict[str, Any]]
# The row stored with each logged model as its input example; its prefix is the sample prefix (see
# example_prefix), so that the example is one the model accepts whatever language it was trained on.
INPUT_EXAMPLE = {"length": [40], "temperature": [0.8], "seed": [0]}


def _load_text_key(inputs: dict[str, Any]) -> Recipe:
    data_config = inputs["data_config"]
    return "load-text", {"source": char_source_fingerprint(data_config)}, {**config_slice("data", data_config), "seed": inputs["seed"]}


@task(
    retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input,
    cache_policy=PipelineCache(key=_load_text_key, check=output_check(char_split_files_problem)),
)
def load_text(data_config: CharDataConfig, seed: int, artifacts_dir: str) -> CharSplitFiles:
    """Load the text source, split it into train/validation blocks (seeded) and write both with digests."""
    source = load_char_source(data_config)
    return write_char_splits(source, data_config, seed, Path(artifacts_dir))


@task(cache_policy=PipelineCache(key=split_contract_key("contracts-char-text"), check=report_problem))
def check_text(split_files: CharSplitFiles, contracts: CharContractConfig) -> ContractReport:
    """Validate the text; a failure stops the flow before anything is encoded or trained."""
    return raise_on_failure(validate_char_splits(split_files, contracts))


def _encode_key(inputs: dict[str, Any]) -> Recipe:
    # The vocabulary and ids follow from the text and the rare-character threshold alone.
    return "encode-chars", split_digests(inputs["split_files"]), {"data.min_char_count": inputs.get("min_char_count")}


@task(cache_policy=PipelineCache(key=_encode_key, check=output_check(char_encoded_problem)))
def encode(split_files: CharSplitFiles, artifacts_dir: str, min_char_count: int | None = None) -> CharEncodedData:
    """Vocabulary from the training text (rare characters read as unknown); both splits as character ids."""
    return encode_char_splits(split_files, Path(artifacts_dir), min_char_count)


def _stream_settings(config: Any) -> dict[str, Any]:
    """The settings of the carried-state validation pass (evaluation, and re-scoring a champion)."""
    training = config.training
    return {"training.validation_streams": training.validation_streams, "training.validation_window": training.validation_window}


def _train_key(inputs: dict[str, Any]) -> Recipe:
    encoded, config = inputs["encoded"], inputs["config"]
    training = {key: value for key, value in config_slice("training", config.training).items() if key != "training.architectures"}
    return (
        f"train-{inputs['architecture']}",
        {
            "dataset digest": inputs["split_files"].digest,
            "ids digest": encoded.ids_digest,
            "vocabulary digest": file_digest(encoded.vocabulary_path),
            **store_parts(inputs["settings"]),
        },
        # Sampling settings too: training logs the samples (and an empty prefix reads the validation text).
        {"architecture": inputs["architecture"], "seed": config.seed, **training, **config_slice("sampling", config.sampling)},
    )


def sample_prefix(config: CharLMConfig, split_files: CharSplitFiles) -> str:
    """The configured sample prefix, or the first line of the validation text (any language)."""
    if config.sampling.prefix:
        return config.sampling.prefix
    return read_char_split(split_files, "validation").lstrip("\n").split("\n", 1)[0][:40]


def example_prefix(prefix: str, vocabulary: list[str]) -> str:
    """``prefix`` without the characters the model cannot read (the served pyfunc refuses those)."""
    known = set(vocabulary) - {vocabulary[UNKNOWN_ID]}
    return "".join(char for char in prefix if char in known)


@task(task_run_name="train-{architecture}", cache_policy=PipelineCache(key=_train_key, check=trained_problem))
def train(
    settings: TrackingSettings,
    architecture: str,
    config: CharLMConfig,
    split_files: CharSplitFiles,
    encoded: CharEncodedData,
    parent_run_id: str,
) -> TrainedCharModel:
    """Fit one character architecture in its own child run: per-epoch loss/perplexity, sample texts every few
    epochs, the pyfunc logged. A failure marks the child run FAILED before raising."""
    import mlflow.types
    import pandas as pd
    from mlflow.models import ModelSignature

    from seqflow.charlm.generate import CHAR_GENERATION, MIXTURE_ARTIFACT, STEP_MODEL_ARTIFACT, VOCABULARY_ARTIFACT
    from seqflow.charlm.train import char_training_fingerprint, train_char_model

    tracker = Tracker(settings)
    run_id = start_architecture_run(
        tracker, "charlm-architecture", architecture, parent_run_id, flow_run.get_id(), config.profile,
        dataset_tags(split_files, encoded),
    )
    with tracker.closing_on_failure(run_id):
        log_split_inputs(tracker.client, run_id, split_files, CHAR_SPLITS, "text")
        tracker.log_params(run_id, {"architecture": architecture, **config.to_flat_dict()})
        output_dir = encoded.encoded_dir / "models" / run_id
        vocabulary, prefix = load_char_vocabulary(encoded.vocabulary_path), sample_prefix(config, split_files)
        fingerprint = char_training_fingerprint(encoded.ids_digest, encoded.vocab_size, architecture, config.training, config.seed)
        checkpoint_dir = tag_training(tracker, run_id, fingerprint, config.artifacts_dir, config.training.checkpoint)
        outcome = train_char_model(
            architecture,
            load_char_ids(encoded, "train"),
            load_char_ids(encoded, "validation"),
            vocabulary,
            config.training,
            config.sampling,
            prefix,
            config.seed,
            output_dir,
            on_epoch_end=tracker.epoch_logger(run_id),
            on_samples=lambda epoch, text: tracker.log_text(run_id, text, f"samples/epoch_{epoch:03d}.txt"),
            checkpoint_dir=checkpoint_dir,
        )
        log_fit_outcome(
            tracker, run_id, architecture, outcome, output_dir,
            metrics={"epochs_run": outcome.epochs_run, "best_epoch": outcome.best_epoch, "parameters": outcome.parameters},
            curve_metrics=("loss", "perplexity"),
        )
        signature = ModelSignature(
            inputs=mlflow.types.Schema([
                mlflow.types.ColSpec("string", "prefix"), mlflow.types.ColSpec("long", "length"),
                mlflow.types.ColSpec("double", "temperature"), mlflow.types.ColSpec("long", "seed", required=False),
            ]),
            outputs=mlflow.types.Schema([mlflow.types.ColSpec("string", "text"), mlflow.types.ColSpec("string", "continuation")]),
        )
        artifacts = {STEP_MODEL_ARTIFACT: str(outcome.step_model_path), VOCABULARY_ARTIFACT: str(encoded.vocabulary_path)}
        mixture_path = None
        if config.training.ngram_interpolation:
            # λ is chosen on the validation characters now, so the logged model is the mixture it is scored as.
            mixture_path = _fit_mixture(outcome, encoded, config, output_dir)
            artifacts[MIXTURE_ARTIFACT] = str(mixture_path)
        model_uri = tracker.log_pyfunc_model(
            run_id,
            CHAR_GENERATION,
            artifacts,
            signature,
            pd.DataFrame({"prefix": [example_prefix(prefix, vocabulary)], **INPUT_EXAMPLE}),
        )
    # The step model's path, history, epochs, best epoch, timings and parameter count are the fit's.
    return carried_over(TrainedCharModel, outcome, run_id=run_id, model_uri=model_uri, mixture_path=mixture_path)


def _fit_mixture(outcome: Any, encoded: CharEncodedData, config: CharLMConfig, output_dir: Path) -> Path:
    """The n-gram side of the mixture (training ids, order, λ chosen on validation), saved beside the models."""
    import keras

    from seqflow.charlm.mixture import MIXTURE_FILE, fit_mixture

    step_model = keras.saving.load_model(outcome.step_model_path, compile=False)
    training = config.training
    mixture, _ = fit_mixture(
        step_model, load_char_ids(encoded, "train"), load_char_ids(encoded, "validation"), encoded.vocab_size,
        training.validation_streams, training.validation_window,
    )
    return mixture.save(Path(output_dir) / MIXTURE_FILE)


def _evaluate_key(inputs: dict[str, Any]) -> Recipe:
    trained = inputs["trained"]
    return (
        f"evaluate-{trained.architecture}",
        {"trained run": trained.run_id, "ids digest": inputs["encoded"].ids_digest, **store_parts(inputs["settings"])},
        _stream_settings(inputs["config"]),
    )


@task(task_run_name="evaluate-{trained.architecture}", cache_policy=PipelineCache(key=_evaluate_key, check=evaluated_problem))
def evaluate(settings: TrackingSettings, trained: TrainedCharModel, encoded: CharEncodedData, config: CharLMConfig) -> EvaluatedCharModel:
    """Score the saved step model (the file that is served) on the validation text; log and close the run."""
    import keras

    from seqflow.charlm.baselines import BaselineScores, unigram_loss
    from seqflow.charlm.mixture import NgramMixture, mixture_scores
    from seqflow.charlm.train import stream_loss

    tracker = Tracker(settings)
    with tracker.closing_on_failure(trained.run_id, finish=True):
        step_model = keras.saving.load_model(trained.step_model_path, compile=False)
        training = config.training
        validation_ids = load_char_ids(encoded, "validation")
        network_loss, weight, extra = None, None, {}
        if trained.mixture_path is not None:
            # The registered model is the mixture: its score is the mixture's; the network's and the n-gram's
            # alone, λ, and the mixture scored with λ chosen on the other half of the streams are logged beside it.
            scores = mixture_scores(step_model, NgramMixture.load(trained.mixture_path), validation_ids,
                                    training.validation_streams, training.validation_window)
            val_loss, network_loss, weight, extra = scores.mixture_loss, scores.network_loss, scores.weight, scores.metrics()
            # Its n-gram is the baseline's (same training ids, same order choice): not fitted a second time.
            baselines = BaselineScores(
                unigram_loss(load_char_ids(encoded, "train"), validation_ids, encoded.vocab_size, training.validation_streams),
                scores.ngram_loss, scores.ngram_order,
            )
        else:
            val_loss = stream_loss(step_model, validation_ids, training.validation_streams, training.validation_window)
            baselines = char_baselines(encoded, training.validation_streams)
        val_perplexity = math.exp(min(val_loss, 50.0))
        tracker.log_metrics(
            trained.run_id, {"best_val_loss": val_loss, "best_val_perplexity": val_perplexity},
            model_id=tracker.logged_model_id(trained.run_id),
            dataset=measured_on(tracker.run_tags(trained.run_id), "validation", "text"),
        )
        # The count baselines on the same validation characters, beside the network's score.
        tracker.log_metrics(trained.run_id, {**baselines.metrics(), **extra})
    # The run, model, epochs, timings and parameter count are the trained model's.
    return carried_over(
        EvaluatedCharModel, trained, dataset_digest=encoded.dataset_digest, val_loss=val_loss, val_perplexity=val_perplexity,
        network_val_loss=network_loss, mixture_weight=weight, baselines=baselines,
    )


def _register_key(inputs: dict[str, Any]) -> Recipe:
    evaluated, config = inputs["evaluated"], inputs["config"]
    scores = [[model.run_id, model.val_loss, model.val_perplexity] for model in evaluated]
    return (
        "register-charlm",
        {
            **registration_inputs(evaluated, "validation scores", scores, inputs["settings"]),
            "ids digest": inputs["encoded"].ids_digest,
        },
        {**config_slice("promotion", config.promotion), **_stream_settings(config)},
    )


@task(cache_policy=PipelineCache(key=_register_key, check=registration_problem))
def register(
    settings: TrackingSettings,
    evaluated: list[EvaluatedCharModel],
    encoded: CharEncodedData,
    config: CharLMConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every model and move the champion alias if the lowest perplexity passes the gates (all or
    nothing); a champion measured on other text is re-scored on this validation text first."""
    return register_and_promote_charlm(Tracker(settings), evaluated, encoded, config, parent_run_id)
