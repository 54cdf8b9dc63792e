"""``seqflow tune`` and ``seqflow charlm tune``: validated data -> a persistent Optuna study -> one nested MLflow run
per trial, fanned out on the flow's task runner (sequential, or Dask workers sharing the study) -> plots and the
best trial's profile. One flow for both pipelines; ``request.pipeline`` picks the data steps and the trial's fit
(see :data:`seqflow.tasks.tuning.PIPELINES`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prefect import flow

from seqflow.core.config import ExecutionConfig
from seqflow.core.execution import InlineTaskRunner, run_flow_on
from seqflow.core.processes import current_process
from seqflow.core.search_runs import SearchSummary, TuneRequest
from seqflow.core.search_space import distributions, parse_space, space_digest
from seqflow.core.settings import TrackingSettings
from seqflow.core.studies import fail_trials_of_dead_processes, make_pruner, open_study
from seqflow.core.tuning import TrialTicket, search
from seqflow.tasks.tracking import close_runs_of_failed_flow
from seqflow.tasks.tuning import finish_search, start_search, tune_trial


def study_identity(config: Any, request: TuneRequest) -> dict[str, object]:
    """What a study must be resumed with: the same model, space and base settings (any change to those makes
    its earlier trials incomparable)."""
    base = {key: str(value) for key, value in config.to_flat_dict().items() if key != "artifacts_dir"}
    return {
        "pipeline": request.pipeline,
        "architecture": request.architecture,
        "space": space_digest(parse_space(request.space, "space")),
        "base_config": hashlib.sha256(json.dumps(base, sort_keys=True).encode()).hexdigest()[:16],
    }


def prepared_data(pipeline: str, config: Any) -> tuple[Any, Any, list[Any]]:
    """The pipeline's own data steps (cached task runs): its split files, its model-ready data, its contracts."""
    if pipeline == "charlm":
        from seqflow.flows.charlm import prepare_char_data

        return prepare_char_data(config)
    from seqflow.flows.validate import prepare_validated_data

    data = prepare_validated_data(config)
    return data.split_files, data.tokenised, data.contract_reports


@flow(name="seqflow-tune", task_runner=InlineTaskRunner(), on_failure=[close_runs_of_failed_flow],
      on_crashed=[close_runs_of_failed_flow])
def tune_flow(config: Any, settings: TrackingSettings, request: TuneRequest) -> SearchSummary:
    """Search ``request.architecture``'s space on the validation split, going on with the study if it exists."""
    pipeline = request.pipeline
    split_files, prepared, contract_reports = prepared_data(pipeline, config)
    startup = max(1, min(5, request.trials // 4))
    study = open_study(request.storage_url, request.study_name, make_pruner(request.pruner, startup), config.seed,
                       study_identity(config, request))
    fail_trials_of_dead_processes(study)
    parent_run_id = start_search(settings, pipeline, config, request, split_files, prepared)
    owner = current_process()

    def submit(trial):  # noqa: ANN001, ANN202 - an Optuna trial; a Prefect future
        ticket = TrialTicket(request.storage_url, request.study_name, trial._trial_id, trial.number, dict(trial.params),
                             request.pruner, startup)
        return tune_trial.submit(settings, pipeline, ticket, request.architecture, config, split_files, prepared, parent_run_id)

    progress = search(
        study, distributions(parse_space(request.space, "space")), submit, request.trials, request.parallel,
        None if request.timeout_minutes is None else request.timeout_minutes * 60,
        {"host": owner.host, "pid": owner.pid, "started": owner.started},
    )
    return finish_search(settings, pipeline, config, request, parent_run_id, progress, contract_reports)


def run_tune_flow(config: Any, settings: TrackingSettings, request: TuneRequest,
                  execution: ExecutionConfig = ExecutionConfig()) -> SearchSummary:
    """Run :func:`tune_flow` on the task runner ``execution`` asks for."""
    return run_flow_on(tune_flow, execution, config.artifacts_dir, settings.tracking_uri, config, settings, request)
