"""The tasks of ``seqflow tune`` for the sentiment models: the search's parent run, one trial (a nested run,
trained by the pipeline's own training step), and the end of the search (plots, best trial, profile file).

Trials are not cached: each is one draw of the study, told to it as it ends. A trial whose parameters change the
tokenisation runs the pipeline's cached ``tokenise`` and ``check_tokenised`` tasks for them first (nested task
runs), so trials that share a tokenisation share its arrays.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.runtime import flow_run

from seqflow.core.caching import cached
from seqflow.core.contracts import ContractReport
from seqflow.core.profile_files import write_profile_file
from seqflow.core.search_runs import SearchSummary, TuneRequest, finish_search_run, start_search_run
from seqflow.core.settings import TrackingSettings
from seqflow.core.studies import TrialResult, best_trial
from seqflow.core.tracking import Tracker
from seqflow.core.training_runs import log_fit_outcome
from seqflow.core.tuning import SearchProgress, TrialTicket, run_trial
from seqflow.sentiment.config import PipelineConfig
from seqflow.sentiment.datasets import SplitFiles
from seqflow.sentiment.records import dataset_tags
from seqflow.sentiment.tokenise import TokenisedData
from seqflow.sentiment.tuning import discard, fit_trial, trial_config, trial_overrides
from seqflow.tasks.sentiment import check_tokenised, tokenise


@task
def start_search(
    settings: TrackingSettings, config: PipelineConfig, request: TuneRequest, split_files: SplitFiles,
    tokenised: TokenisedData,
) -> str:
    """Open the parent MLflow run of this search session; returns its run id."""
    return start_search_run(Tracker(settings), request, config.profile, flow_run.get_id(),
                            dataset_tags(split_files, tokenised), config.to_flat_dict())


def trial_data(config: PipelineConfig, base: TokenisedData, split_files: SplitFiles, base_config: PipelineConfig) -> TokenisedData:
    """The tokenised arrays of a trial: the search's own, or (when the trial changes the tokenisation) those of
    the pipeline's tokenise step for its settings, checked by the tokenised contract."""
    if config.tokenisation == base_config.tokenisation:
        return base
    tokenised = cached(tokenise, config.artifacts_dir)(split_files, config.tokenisation, config.artifacts_dir)
    cached(check_tokenised, config.artifacts_dir)(tokenised, config.tokenisation, config.contracts)
    return tokenised


@task(task_run_name="trial-{ticket.number}")
def tune_trial(
    settings: TrackingSettings,
    ticket: TrialTicket,
    architecture: str,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    parent_run_id: str,
) -> TrialResult:
    """Train one trial's configuration on the training split, scored by its validation loss after every epoch
    (the pruner may stop it), in a nested MLflow run; the test split is never loaded for it."""
    tracker = Tracker(settings)
    trial = trial_config(config, architecture, ticket.params)

    def train(run_id: str, on_epoch_end):  # noqa: ANN001, ANN202 - an EpochCallback; the history
        data = trial_data(trial, tokenised, split_files, config)
        tracker.log_params(run_id, trial.architecture_params(architecture))
        outcome, output_dir = fit_trial(trial, architecture, data, on_epoch_end, data.tokenised_dir / "tuning" / run_id)
        log_fit_outcome(tracker, run_id, architecture, outcome, output_dir)
        discard(output_dir)
        return outcome.history

    return run_trial(tracker, ticket, parent_run_id, flow_run.get_id(), dataset_tags(split_files, tokenised), train)


@task
def finish_search(
    settings: TrackingSettings, config: PipelineConfig, request: TuneRequest, parent_run_id: str,
    progress: SearchProgress, contract_reports: list[ContractReport],
) -> SearchSummary:
    """Write the best trial's profile file, log the study's plots and trials to the parent run, close it."""
    import optuna

    study = optuna.load_study(study_name=request.study_name, storage=request.storage_url)
    best = best_trial(study)
    profile_path = None
    if best is not None:
        profile_path = write_profile_file(
            Path(request.profile_path), request.base_profile, f"tuned-{request.architecture}",
            {**request.base_settings, **{key: list(value) if isinstance(value, tuple) else value
                                         for key, value in trial_overrides(request.architecture, best.params).items()}},
            f"seqflow tune: study {request.study_name}, trial {best.number} of {len(study.trials)}, "
            f"best val_loss {best.value:.4f}\nbase profile {request.base_profile!r}; train it with `seqflow run --profile FILE`",
        )
    return finish_search_run(Tracker(settings), parent_run_id, study, progress, profile_path,
                             Path(config.artifacts_dir) / "tuning" / request.study_name / "plots")
