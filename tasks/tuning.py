"""The tasks of ``seqflow tune`` and ``seqflow charlm tune``: the search's parent run, one trial (a nested run,
trained by its pipeline's own training step), and the end of the search (plots, best trial, profile file).

The tasks are the same for both pipelines; each pipeline declares its parts in its ``tuning`` module (space, how
a trial's parameters become a config, its fit) and :data:`PIPELINES` names them. A task is given the pipeline's
name, not its parts, so that any Dask worker can run it.

Trials are not cached: each is one draw of the study, told to it as it ends. A sentiment trial whose parameters
change the tokenisation runs the pipeline's cached ``tokenise`` and ``check_tokenised`` tasks for them first
(nested task runs), so trials that share a tokenisation share its arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prefect import task
from prefect.runtime import flow_run

from seqflow.charlm import records as charlm_records, tuning as charlm_tuning
from seqflow.core.caching import cached
from seqflow.core.contracts import ContractReport
from seqflow.core.fitting import EpochCallback
from seqflow.core.profile_files import write_profile_file
from seqflow.core.search_runs import SearchSummary, TuneRequest, finish_search_run, start_search_run
from seqflow.core.settings import TrackingSettings
from seqflow.core.studies import TrialResult, best_trial
from seqflow.core.tracking import Tracker
from seqflow.core.training_runs import log_fit_outcome
from seqflow.core.tuning import SearchProgress, TrialTicket, discard_trial_output, run_trial
from seqflow.sentiment import records as sentiment_records, tuning as sentiment_tuning
from seqflow.sentiment.config import PipelineConfig
from seqflow.sentiment.datasets import SplitFiles
from seqflow.sentiment.tokenise import TokenisedData
from seqflow.tasks.sentiment import check_tokenised, tokenise

# A trial's fit: (tracker, run id, trial config, search config, architecture, split files, prepared data, epoch
# callback) -> its per-epoch history, the fit logged to the run.
TrialFit = Callable[[Tracker, str, Any, Any, str, Any, Any, EpochCallback], dict[str, list[float]]]


def trial_data(config: PipelineConfig, base: TokenisedData, split_files: SplitFiles, base_config: PipelineConfig) -> TokenisedData:
    """The tokenised arrays of a sentiment trial: the search's own, or (when the trial changes the tokenisation)
    those of the pipeline's tokenise step for its settings, checked by the tokenised contract."""
    if config.tokenisation == base_config.tokenisation:
        return base
    tokenised = cached(tokenise, config.artifacts_dir)(split_files, config.tokenisation, config.artifacts_dir)
    cached(check_tokenised, config.artifacts_dir)(tokenised, config.tokenisation, config.contracts)
    return tokenised


def _sentiment_fit(tracker: Tracker, run_id: str, trial: Any, config: Any, architecture: str, split_files: Any,
                   tokenised: Any, on_epoch_end: EpochCallback) -> dict[str, list[float]]:
    data = trial_data(trial, tokenised, split_files, config)
    tracker.log_params(run_id, trial.architecture_params(architecture))
    outcome, output_dir = sentiment_tuning.fit_trial(trial, architecture, data, on_epoch_end, data.tokenised_dir / "tuning" / run_id)
    log_fit_outcome(tracker, run_id, architecture, outcome, output_dir)
    discard_trial_output(output_dir)
    return outcome.history


def _charlm_fit(tracker: Tracker, run_id: str, trial: Any, config: Any, architecture: str, split_files: Any,
                encoded: Any, on_epoch_end: EpochCallback) -> dict[str, list[float]]:
    tracker.log_params(run_id, {key: value for key, value in trial.to_flat_dict().items() if key.startswith("training.")})
    outcome, output_dir = charlm_tuning.fit_trial(trial, architecture, encoded, on_epoch_end, encoded.encoded_dir / "tuning" / run_id)
    log_fit_outcome(tracker, run_id, architecture, outcome, output_dir,
                    metrics={"epochs_run": outcome.epochs_run, "best_epoch": outcome.best_epoch, "parameters": outcome.parameters},
                    curve_metrics=("loss", "perplexity"))
    discard_trial_output(output_dir)
    return outcome.history


@dataclass(frozen=True)
class TunedPipeline:
    """What the tune tasks need of a pipeline."""

    trial_config: Callable[[Any, str, dict[str, Any]], Any]
    trial_overrides: Callable[[str, dict[str, Any]], dict[str, Any]]
    # (split files, prepared data) -> the tags that name the data on every run.
    dataset_tags: Callable[[Any, Any], dict[str, str]]
    fit: TrialFit


PIPELINES: dict[str, TunedPipeline] = {
    "sentiment": TunedPipeline(sentiment_tuning.trial_config, sentiment_tuning.trial_overrides,
                               sentiment_records.dataset_tags, _sentiment_fit),
    "charlm": TunedPipeline(charlm_tuning.trial_config, charlm_tuning.trial_overrides,
                            charlm_records.dataset_tags, _charlm_fit),
}


@task
def start_search(settings: TrackingSettings, pipeline: str, config: Any, request: TuneRequest, split_files: Any,
                 prepared: Any) -> str:
    """Open the parent MLflow run of this search session; returns its run id."""
    return start_search_run(Tracker(settings), request, config.profile, flow_run.get_id(),
                            PIPELINES[pipeline].dataset_tags(split_files, prepared), config.to_flat_dict())


@task(task_run_name="trial-{ticket.number}")
def tune_trial(
    settings: TrackingSettings,
    pipeline: str,
    ticket: TrialTicket,
    architecture: str,
    config: Any,
    split_files: Any,
    prepared: Any,
    parent_run_id: str,
) -> TrialResult:
    """Train one trial's configuration on the training split, scored by its validation loss after every epoch
    (the pruner may stop it), in a nested MLflow run; a sentiment trial never loads the test split."""
    tracker, parts = Tracker(settings), PIPELINES[pipeline]
    trial = parts.trial_config(config, architecture, ticket.params)

    def train(run_id: str, on_epoch_end: EpochCallback) -> dict[str, list[float]]:
        return parts.fit(tracker, run_id, trial, config, architecture, split_files, prepared, on_epoch_end)

    return run_trial(tracker, ticket, parent_run_id, flow_run.get_id(), parts.dataset_tags(split_files, prepared), train)


@task
def finish_search(
    settings: TrackingSettings, pipeline: str, config: Any, request: TuneRequest, parent_run_id: str,
    progress: SearchProgress, contract_reports: list[ContractReport],
) -> SearchSummary:
    """Write the best trial's profile file, log the study's plots and trials to the parent run, close it."""
    import optuna

    study = optuna.load_study(study_name=request.study_name, storage=request.storage_url)
    best = best_trial(study)
    profile_path = None
    run_command = "seqflow charlm run" if pipeline == "charlm" else "seqflow run"
    if best is not None:
        overrides = PIPELINES[pipeline].trial_overrides(request.architecture, best.params)
        profile_path = write_profile_file(
            Path(request.profile_path), request.base_profile, f"tuned-{request.architecture}",
            {**request.base_settings, **{key: list(value) if isinstance(value, tuple) else value
                                         for key, value in overrides.items()}},
            f"seqflow tune: study {request.study_name}, trial {best.number} of {len(study.trials)}, "
            f"best val_loss {best.value:.4f}\nbase profile {request.base_profile!r}; train it with `{run_command} --profile FILE`",
        )
    return finish_search_run(Tracker(settings), parent_run_id, study, progress, profile_path,
                             Path(config.artifacts_dir) / "tuning" / request.study_name / "plots", run_command)
