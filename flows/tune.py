"""``seqflow tune``: validated data -> a persistent Optuna study -> one nested MLflow run per trial, fanned out on
the flow's task runner (sequential, or Dask workers sharing the study) -> plots and the best trial's profile."""

from __future__ import annotations

import hashlib
import json

from prefect import flow

from seqflow.core.config import ExecutionConfig
from seqflow.core.execution import InlineTaskRunner, run_flow_on
from seqflow.core.processes import current_process
from seqflow.core.search_runs import SearchSummary, TuneRequest
from seqflow.core.search_space import distributions, parse_space, space_digest
from seqflow.core.settings import TrackingSettings
from seqflow.core.studies import fail_trials_of_dead_processes, make_pruner, open_study
from seqflow.core.tuning import TrialTicket, search
from seqflow.flows.validate import prepare_validated_data
from seqflow.sentiment.config import PipelineConfig
from seqflow.tasks.tracking import close_runs_of_failed_flow
from seqflow.tasks.tuning import finish_search, start_search, tune_trial


def study_identity(config: PipelineConfig, request: TuneRequest) -> dict[str, object]:
    """What a study must be resumed with: the same model, space and base settings (any change to those makes
    its earlier trials incomparable)."""
    base = {key: str(value) for key, value in config.to_flat_dict().items() if key != "artifacts_dir"}
    return {
        "pipeline": "sentiment",
        "architecture": request.architecture,
        "space": space_digest(parse_space(request.space, "space")),
        "base_config": hashlib.sha256(json.dumps(base, sort_keys=True).encode()).hexdigest()[:16],
    }


@flow(name="seqflow-tune", task_runner=InlineTaskRunner(), on_failure=[close_runs_of_failed_flow],
      on_crashed=[close_runs_of_failed_flow])
def tune_flow(config: PipelineConfig, settings: TrackingSettings, request: TuneRequest) -> SearchSummary:
    """Search ``request.architecture``'s space on the validation split, going on with the study if it exists."""
    data = prepare_validated_data(config)
    startup = max(1, min(5, request.trials // 4))
    study = open_study(request.storage_url, request.study_name, make_pruner(request.pruner, startup), config.seed,
                       study_identity(config, request))
    fail_trials_of_dead_processes(study)
    parent_run_id = start_search(settings, config, request, data.split_files, data.tokenised)
    owner = current_process()

    def submit(trial):  # noqa: ANN001, ANN202 - an Optuna trial; a Prefect future
        ticket = TrialTicket(request.storage_url, request.study_name, trial._trial_id, trial.number, dict(trial.params),
                             request.pruner, startup)
        return tune_trial.submit(settings, ticket, request.architecture, config, data.split_files, data.tokenised, parent_run_id)

    progress = search(
        study, distributions(parse_space(request.space, "space")), submit, request.trials, request.parallel,
        None if request.timeout_minutes is None else request.timeout_minutes * 60,
        {"host": owner.host, "pid": owner.pid, "started": owner.started},
    )
    return finish_search(settings, config, request, parent_run_id, progress, data.contract_reports)


def run_tune_flow(config: PipelineConfig, settings: TrackingSettings, request: TuneRequest,
                  execution: ExecutionConfig = ExecutionConfig()) -> SearchSummary:
    """Run :func:`tune_flow` on the task runner ``execution`` asks for."""
    return run_flow_on(tune_flow, execution, config.artifacts_dir, settings.tracking_uri, config, settings, request)
