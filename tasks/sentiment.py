"""The sentiment pipeline's steps, one Prefect task each: download, check_raw, tokenise, check_tokenised, train,
refit (with training.refit), evaluate, ensemble (with ensemble.enabled), register. The decorated function is the step; its name is its Prefect task name and its
``seqflow rerun`` name. Its cache declaration sits above it: the recipe naming what its result depends on (see
:mod:`seqflow.core.caching`; the code part is read from what the function imports) and the check of a stored
result. The plain pandas/Keras code they call (``seqflow.sentiment``) knows nothing of Prefect or MLflow.

Only tasks that do I/O against something that can fail transiently (loading a source) retry, and never on a
:class:`~seqflow.core.errors.SeqflowError`, which means bad input that a retry cannot fix.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.runtime import flow_run

from seqflow.sentiment.config import (
    BehaviourConfig,
    ContractConfig,
    DataConfig,
    PipelineConfig,
    PromotionConfig,
    TokenisationConfig,
    TrainingConfig,
)
from seqflow.core.caching import PipelineCache, config_slice, file_digest, output_check, registration_inputs, split_digests
from seqflow.core.caching import evaluated_problem, registration_problem, report_problem, split_contract_key, store_parts, trained_problem
from seqflow.core.evaluation import classification_metrics, overfitting_figures, plot_confusion_matrix
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import Tracker
from seqflow.sentiment.behaviour import describe_failures, metric_name, pass_rates, pyfunc_predictor, run_behaviour_checks
from seqflow.sentiment.cache_checks import source_fingerprint, split_files_problem, tokenised_problem
from seqflow.core.contracts import ContractReport, raise_on_failure
from seqflow.sentiment.contracts import validate_raw_splits, validate_tokenised_arrays
from seqflow.core.lineage import log_split_inputs, measured_on
from seqflow.core.records import carried_over
from seqflow.sentiment.datasets import SPLITS, SplitFiles, split_source, with_extra_training_rows, write_splits
from seqflow.sentiment.records import (
    INPUT_EXAMPLE_TEXTS,
    EvaluatedModel,
    TrainedModel,
    dataset_tags,
)
from seqflow.sentiment.serving import REVIEW_SENTIMENT, log_serving_model
from seqflow.core.training_runs import log_fit_outcome, start_architecture_run, tag_training
from seqflow.sentiment.sources import load_source
from seqflow.sentiment.steps import RegistrationOutcome, register_and_promote
from seqflow.sentiment.tokenise import TokenisedData, load_arrays, load_vocabulary, pad_and_tokenise
from seqflow.sentiment.ensemble import ENSEMBLE, MEMBERS_TAG, build_ensemble, choose_members
from seqflow.sentiment.refit import REFIT_SPLITS, chosen_epochs, refit_classifier
from seqflow.sentiment.train import (
    EmbeddingSource,
    export_serving_model,
    read_embedding_source,
    train_classifier,
    training_fingerprint,
)
from seqflow.tasks.retry import retry_unless_bad_input

# Each step's cache key recipe: (identity in summaries, inputs by content, the config it uses).
Recipe = tuple[str, dict[str, str], dict[str, Any]]


def _download_key(inputs: dict[str, Any]) -> Recipe:
    data_config = inputs["data_config"]
    sources = {"source": source_fingerprint(data_config)}
    if data_config.extra_training_source:
        extra = dataclasses.replace(data_config, source=data_config.extra_training_source)
        sources["extra training source"] = source_fingerprint(extra)
    return "download", sources, {**config_slice("data", data_config), "seed": inputs["seed"]}


@task(
    retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input,
    cache_policy=PipelineCache(key=_download_key, check=output_check(split_files_problem)),
)
def download(data_config: DataConfig, seed: int, artifacts_dir: str) -> SplitFiles:
    """Load the source, split it (seeded, stratified) and write the splits with their digests."""
    source = load_source(data_config)
    splits = split_source(source, data_config, seed)
    if data_config.extra_training_source:
        extra = load_source(dataclasses.replace(data_config, source=data_config.extra_training_source))
        splits = with_extra_training_rows(splits, extra, seed)
    return write_splits(splits, source, data_config, seed, Path(artifacts_dir))


@task(cache_policy=PipelineCache(key=split_contract_key("contracts-raw"), check=report_problem))
def check_raw(split_files: SplitFiles, contracts: ContractConfig) -> ContractReport:
    """Validate raw reviews; a failure stops the flow before tokenisation."""
    return raise_on_failure(validate_raw_splits(split_files, contracts))


def _tokenise_key(inputs: dict[str, Any]) -> Recipe:
    return "tokenise", split_digests(inputs["split_files"]), config_slice("tokenisation", inputs["tokenisation"])


@task(cache_policy=PipelineCache(key=_tokenise_key, check=output_check(tokenised_problem)))
def tokenise(split_files: SplitFiles, tokenisation: TokenisationConfig, artifacts_dir: str) -> TokenisedData:
    """Adapt the vocabulary on train and write padded id arrays for every split."""
    return pad_and_tokenise(split_files, tokenisation, Path(artifacts_dir))


def _check_tokenised_key(inputs: dict[str, Any]) -> Recipe:
    config = {**config_slice("tokenisation", inputs["tokenisation"]), **config_slice("contracts", inputs["contracts"])}
    return "contracts-tokenised", {"arrays digest": inputs["tokenised"].array_digest}, config


@task(cache_policy=PipelineCache(key=_check_tokenised_key, check=report_problem))
def check_tokenised(tokenised: TokenisedData, tokenisation: TokenisationConfig, contracts: ContractConfig) -> ContractReport:
    """Validate the padded arrays against bounds derived from the tokenisation settings."""
    return raise_on_failure(validate_tokenised_arrays(tokenised, tokenisation, contracts))


def _train_key(inputs: dict[str, Any]) -> Recipe:
    tokenised, config = inputs["tokenised"], inputs["config"]
    # This architecture's settings with its overrides applied: another architecture's override, or which other
    # architectures run alongside, does not change this one's model (and must not retrain it), while a change
    # is reported by the field that changed ("training.learning_rate"), not as a new override list.
    training = {f"training.{key}": value for key, value in config.training.settings_of(inputs["architecture"]).items()}
    return (
        f"train-{inputs['architecture']}",
        {
            "dataset digest": inputs["split_files"].digest,
            "arrays digest": tokenised.array_digest,
            "vocabulary digest": file_digest(tokenised.vocabulary_path),
            **store_parts(inputs["settings"]),
        },
        {"architecture": inputs["architecture"], "seed": config.seed, **training},
    )


def warm_start_source(tracker: Tracker, training: TrainingConfig, download_dir: Path) -> EmbeddingSource | None:
    """The registered model whose embedding initialises this one, when training.warm_start_model_uri is set."""
    if training.warm_start_model_uri is None:
        return None
    serving_path = tracker.download_serving_model(training.warm_start_model_uri, download_dir)
    return read_embedding_source(serving_path, training.warm_start_model_uri)


@task(task_run_name="train-{architecture}", cache_policy=PipelineCache(key=_train_key, check=trained_problem))
def train(
    settings: TrackingSettings,
    architecture: str,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
    parent_run_id: str,
) -> TrainedModel:
    """Fit one architecture in its own child run: per-epoch metrics, learning curves, the raw-text model logged.
    A failure marks the child run FAILED before raising."""
    tracker, training = Tracker(settings), config.training
    run_id = start_architecture_run(
        tracker, "architecture", architecture, parent_run_id, flow_run.get_id(), config.profile,
        dataset_tags(split_files, tokenised),
    )
    with tracker.closing_on_failure(run_id):
        log_split_inputs(tracker.client, run_id, split_files, SPLITS, "reviews", read_frame=pd.read_parquet)
        tracker.log_params(run_id, config.architecture_params(architecture))
        for report in contract_reports:
            tracker.log_artifact(run_id, report.results_path, "contracts")
        output_dir = tokenised.tokenised_dir / "models" / run_id
        vocabulary = load_vocabulary(tokenised.vocabulary_path)
        fingerprint = training_fingerprint(tokenised.array_digest, tokenised.vocab_size, architecture, training, config.seed)
        checkpoint_dir = tag_training(tracker, run_id, fingerprint, config.artifacts_dir, training.checkpoint)
        outcome = train_classifier(
            architecture,
            load_arrays(tokenised),
            tokenised.vocab_size,
            training,
            config.seed,
            output_dir,
            on_epoch_end=tracker.epoch_logger(run_id),
            vocabulary=vocabulary,
            warm_start=warm_start_source(tracker, training, output_dir / "warm_start"),
            checkpoint_dir=checkpoint_dir,
        )
        log_fit_outcome(tracker, run_id, architecture, outcome, output_dir, {"train_rows": outcome.train_rows})
        serving_path = export_serving_model(
            outcome.classifier_path,
            vocabulary,
            tokenised.max_length,
            tokenised.padding,
            tokenised.truncation,
            output_dir / f"{architecture}_serving.keras",
        )
        model_uri = log_serving_model(tracker, run_id, serving_path, INPUT_EXAMPLE_TEXTS)
    # The classifier's path, history, epochs and timings are the fit's.
    return carried_over(TrainedModel, outcome, run_id=run_id, model_uri=model_uri)


def _refit_key(inputs: dict[str, Any]) -> Recipe:
    trained, tokenised, config = inputs["trained"], inputs["tokenised"], inputs["config"]
    training = {f"training.{key}": value for key, value in config.training.settings_of(trained.architecture).items()}
    return (
        f"refit-{trained.architecture}",
        {
            "selection run": trained.run_id,
            "arrays digest": tokenised.array_digest,
            "vocabulary digest": file_digest(tokenised.vocabulary_path),
            **store_parts(inputs["settings"]),
        },
        {"architecture": trained.architecture, "seed": config.seed, **training},
    )


# Tags of a refit's run: the run that chose its settings, what it fitted on (digest of exactly those id rows and
# labels), how many rows and epochs; and on the run that chose them, the refit that replaced its model.
REFIT_OF_TAG = "seqflow.refit_of"
REFITTED_AS_TAG = "seqflow.refitted_as"
REFIT_DATA_DIGEST_TAG = "seqflow.refit_data_digest"


@task(task_run_name="refit-{trained.architecture}", cache_policy=PipelineCache(key=_refit_key, check=trained_problem))
def refit(
    settings: TrackingSettings,
    trained: TrainedModel,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    parent_run_id: str,
) -> TrainedModel:
    """Fit ``trained``'s settings again on train + validation for the epochs validation chose, in its own child
    run tagged with the run that chose them; that model is the one evaluated and registered. The first run is
    finished here, never scored on the test split."""
    tracker, architecture = Tracker(settings), trained.architecture
    training = config.training.for_architecture(architecture)
    epochs = chosen_epochs(trained.history, training)
    if tracker.run_status(trained.run_id) == "RUNNING":
        tracker.end_run(trained.run_id, "FINISHED")
    run_id = start_architecture_run(
        tracker, "architecture", architecture, parent_run_id, flow_run.get_id(), config.profile,
        dataset_tags(split_files, tokenised), run_name=f"{architecture}-refit",
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, {**config.architecture_params(architecture), "training.epochs": epochs})
        tracker.set_tags(trained.run_id, {REFITTED_AS_TAG: run_id})
        output_dir = tokenised.tokenised_dir / "models" / run_id
        vocabulary = load_vocabulary(tokenised.vocabulary_path)
        outcome = refit_classifier(
            architecture, load_arrays(tokenised), tokenised.vocab_size, config.training, config.seed, epochs, output_dir,
            on_epoch_end=tracker.epoch_logger(run_id), vocabulary=vocabulary,
            warm_start=warm_start_source(tracker, training, output_dir / "warm_start"),
        )
        tracker.set_tags(run_id, {
            REFIT_OF_TAG: trained.run_id, REFIT_DATA_DIGEST_TAG: outcome.data_digest,
            "seqflow.refit_splits": "+".join(REFIT_SPLITS), "seqflow.refit_rows": outcome.rows,
        })
        tracker.log_metrics(run_id, {"train_seconds": outcome.training.seconds, "refit_epochs": epochs})
        tracker.log_text(run_id, json.dumps(outcome.training.history, indent=2), "history.json")
        serving_path = export_serving_model(
            outcome.training.classifier_path, vocabulary, tokenised.max_length, tokenised.padding, tokenised.truncation,
            output_dir / f"{architecture}_serving.keras",
        )
        model_uri = log_serving_model(tracker, run_id, serving_path, INPUT_EXAMPLE_TEXTS)
    return TrainedModel(
        architecture=architecture,
        run_id=run_id,
        classifier_path=outcome.training.classifier_path,
        model_uri=model_uri,
        history=trained.history,
        epochs_run=epochs,
        seconds=trained.seconds + outcome.training.seconds,
        seconds_per_epoch=outcome.training.seconds_per_epoch,
        refit_of_run_id=trained.run_id,
        selection_classifier_path=trained.classifier_path,
    )


def _ensemble_key(inputs: dict[str, Any]) -> Recipe:
    tokenised, config = inputs["tokenised"], inputs["config"]
    return (
        "ensemble",
        {
            "trained runs": ", ".join(f"{model.architecture}={model.run_id}" for model in inputs["trained"]),
            "arrays digest": tokenised.array_digest,
            "vocabulary digest": file_digest(tokenised.vocabulary_path),
            **store_parts(inputs["settings"]),
        },
        {**config_slice("ensemble", config.ensemble), "training.batch_size": config.training.batch_size},
    )


@task(cache_policy=PipelineCache(key=_ensemble_key, check=trained_problem))
def ensemble(
    settings: TrackingSettings,
    trained: list[TrainedModel],
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    parent_run_id: str,
) -> TrainedModel:
    """Combine the run's evaluated models (see :mod:`seqflow.sentiment.ensemble`) into one raw-text model in its
    own child run, which names its members' runs; evaluated, registered and promoted like any architecture."""
    members = choose_members(trained, config.ensemble)  # refuses a missing member before any run exists
    tracker = Tracker(settings)
    run_id = start_architecture_run(
        tracker, "architecture", ENSEMBLE, parent_run_id, flow_run.get_id(), config.profile, dataset_tags(split_files, tokenised)
    )
    with tracker.closing_on_failure(run_id):
        tracker.set_tags(run_id, {MEMBERS_TAG: ",".join(f"{m.architecture}={m.run_id}" for m in members)})
        output_dir = tokenised.tokenised_dir / "models" / run_id
        outcome = build_ensemble(
            members, load_arrays(tokenised), config.ensemble.method, config.training.batch_size, output_dir
        )
        tracker.log_params(run_id, {
            "architecture": ENSEMBLE, **config_slice("ensemble", config.ensemble),
            "ensemble.chosen_members": ",".join(outcome.members),
            "ensemble.weights": ",".join(f"{weight:.4f}" for weight in outcome.weights) or "mean",
            "ensemble.bias": f"{outcome.bias:.4f}",
        })
        tracker.log_metrics(run_id, {**outcome.validation, "train_seconds": outcome.seconds}, step=0)
        serving_path = export_serving_model(
            outcome.classifier_path, load_vocabulary(tokenised.vocabulary_path), tokenised.max_length,
            tokenised.padding, tokenised.truncation, output_dir / f"{ENSEMBLE}_serving.keras",
        )
        model_uri = log_serving_model(tracker, run_id, serving_path, INPUT_EXAMPLE_TEXTS)
    return TrainedModel(
        architecture=ENSEMBLE,
        run_id=run_id,
        classifier_path=outcome.classifier_path,
        model_uri=model_uri,
        history={key: [value] for key, value in outcome.validation.items()},
        epochs_run=0,
        seconds=outcome.seconds,
        seconds_per_epoch=0.0,
    )


def _evaluate_key(inputs: dict[str, Any]) -> Recipe:
    trained = inputs["trained"]
    return (
        f"evaluate-{trained.architecture}",
        {"trained run": trained.run_id, "arrays digest": inputs["tokenised"].array_digest, **store_parts(inputs["settings"])},
        {"training.batch_size": inputs["batch_size"], **config_slice("behaviour", inputs["behaviour"])},
    )


@task(task_run_name="evaluate-{trained.architecture}", cache_policy=PipelineCache(key=_evaluate_key, check=evaluated_problem))
def evaluate(
    settings: TrackingSettings, trained: TrainedModel, tokenised: TokenisedData, batch_size: int, behaviour: BehaviourConfig
) -> EvaluatedModel:
    """Score the test split once; log test metrics, overfitting figures, behavioural pass rates of the logged
    serving model and the confusion matrix; close the child run."""
    import keras

    import seqflow.core.optimizers  # noqa: F401 - registers LazyAdam before loading a classifier compiled with it

    tracker = Tracker(settings)
    with tracker.closing_on_failure(trained.run_id, finish=True):
        arrays = load_arrays(tokenised)
        classifier = keras.saving.load_model(trained.classifier_path)
        probabilities = classifier.predict(arrays["x_test"], batch_size=batch_size, verbose=0)
        metrics = classification_metrics(probabilities, arrays["y_test"])
        overfitting = overfitting_figures(trained.history)
        # The behavioural checks score raw text with the model exactly as logged (and as it would be served).
        served = tracker.load_pyfunc(trained.model_uri, REVIEW_SENTIMENT)
        behaviour_results = run_behaviour_checks(pyfunc_predictor(served), behaviour)
        behaviour_rates = pass_rates(behaviour_results)
        tracker.log_metrics(
            trained.run_id,
            {f"test_{key}": value for key, value in metrics.items()}
            | overfitting
            | {metric_name(check): rate for check, rate in behaviour_rates.items()},
            model_id=tracker.logged_model_id(trained.run_id),
            dataset=measured_on(tracker.run_tags(trained.run_id), "test", "reviews"),
        )
        tracker.log_text(
            trained.run_id,
            json.dumps({"pass_rates": behaviour_rates, "failures": describe_failures(behaviour_results).splitlines()}, indent=2),
            "behaviour.json",
        )
        matrix = plot_confusion_matrix(
            metrics, f"{trained.architecture}: test split", trained.classifier_path.parent / "confusion_matrix.png"
        )
        tracker.log_artifact(trained.run_id, matrix, "plots")
    # The run, model, epochs, timings and history are the trained model's.
    return carried_over(
        EvaluatedModel, trained,
        dataset_digest=tokenised.dataset_digest, test_metrics=metrics, overfitting=overfitting, behaviour=behaviour_rates,
    )


def _register_key(inputs: dict[str, Any]) -> Recipe:
    evaluated = inputs["evaluated"]
    metrics = [[model.run_id, model.test_metrics] for model in evaluated]
    return (
        "register",
        {
            **registration_inputs(evaluated, "test metrics", metrics, inputs["settings"]),
            "dataset digest": inputs["split_files"].digest,
        },
        config_slice("promotion", inputs["promotion"]),
    )


@task(cache_policy=PipelineCache(key=_register_key, check=registration_problem))
def register(
    settings: TrackingSettings,
    evaluated: list[EvaluatedModel],
    split_files: SplitFiles,
    promotion: PromotionConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every model and move the champion alias if the best one passes the gates (all or nothing)."""
    return register_and_promote(Tracker(settings), evaluated, split_files, promotion, parent_run_id)
