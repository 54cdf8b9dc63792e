"""``seqflow rerun TASK``: one task of an earlier execution again, forced past the cache, on its upstream outputs."""

from __future__ import annotations

import dataclasses

from prefect import flow

from seqflow.core.caching import cached
from seqflow.config import PipelineConfig
from seqflow.core.errors import SeqflowError
from seqflow.core.state import PipelineState
from seqflow.config import RERUN_TASKS
from seqflow.core.rerun import RerunPlan, RerunSummary, registration_lines, swap_models
from seqflow.core.settings import TrackingSettings
from seqflow.tasks.data import check_raw_contract, check_tokenised_contract, download_reviews, tokenise_reviews
from seqflow.tasks.rerun import close_rerun_training, finish_rerun_tracking, open_evaluation_run, start_rerun_tracking
from seqflow.tasks.training import close_runs_of_failed_flow, evaluate_model, register_models, train_model


def _rerun_task(task_name: str, earlier: PipelineState, config: PipelineConfig, settings: TrackingSettings,
                architectures: list[str], rerun_of: str, parent_run_id: str) -> tuple[PipelineState, list[str]]:
    """Run ``task_name`` past the cache; returns the state with its output swapped in, and what it produced."""
    artifacts_dir = config.artifacts_dir

    def forced(task):  # noqa: ANN001, ANN202 - a Prefect task in, the same task forced past the cache out
        return cached(task, artifacts_dir, refresh=True)

    if task_name == "download":
        split_files = forced(download_reviews)(config.data, config.seed, artifacts_dir)
        same = "same content as before" if split_files.digest == earlier.split_files.digest else "content changed"
        return dataclasses.replace(earlier, split_files=split_files), [f"splits {split_files.dataset_dir} ({same})"]
    if task_name == "validate":
        reports = [
            forced(check_raw_contract)(earlier.split_files, config.contracts),
            forced(check_tokenised_contract)(earlier.tokenised, config.tokenisation, config.contracts),
        ]
        return dataclasses.replace(earlier, contract_reports=reports), [report.summary_line() for report in reports]
    if task_name == "tokenise":
        tokenised = forced(tokenise_reviews)(earlier.split_files, config.tokenisation, artifacts_dir)
        return dataclasses.replace(earlier, tokenised=tokenised), [f"tokenised arrays {tokenised.arrays_path}"]
    if task_name == "train":
        retrained = {}
        for architecture in architectures:
            trained = forced(train_model)(
                settings, architecture, config, earlier.split_files, earlier.tokenised, earlier.contract_reports,
                parent_run_id,
            )
            close_rerun_training(settings, trained, rerun_of)
            retrained[architecture] = trained
        trained_models = swap_models(earlier.trained, retrained)
        outputs = [f"{arch}: new child run {model.run_id}, {model.epochs_run} epochs" for arch, model in retrained.items()]
        return dataclasses.replace(earlier, trained=trained_models), outputs
    if task_name == "evaluate":
        reevaluated = {}
        for architecture in architectures:
            target = open_evaluation_run(settings, earlier.trained_model(architecture), parent_run_id, rerun_of)
            reevaluated[architecture] = forced(evaluate_model)(
                settings, target, earlier.tokenised, config.training.batch_size, config.behaviour
            )
        evaluated = swap_models(earlier.evaluated, reevaluated)
        outputs = [
            f"{arch}: new child run {model.run_id}, test accuracy {model.test_metrics['accuracy']:.4f}"
            for arch, model in reevaluated.items()
        ]
        return dataclasses.replace(earlier, evaluated=evaluated), outputs
    if task_name == "register":
        registration = forced(register_models)(settings, earlier.evaluated, earlier.split_files, config.promotion, parent_run_id)
        return dataclasses.replace(earlier, registration=registration), registration_lines(registration)
    raise SeqflowError(f"cannot rerun {task_name!r}; tasks: {', '.join(RERUN_TASKS)}")


@flow(name="seqflow-rerun", on_failure=[close_runs_of_failed_flow], on_crashed=[close_runs_of_failed_flow])
def rerun_flow(plan: RerunPlan, settings: TrackingSettings) -> RerunSummary:
    """Rerun exactly ``plan.task`` on the outputs of the execution ``plan.rerun_of``; nothing downstream."""
    parent_run_id = start_rerun_tracking(settings, plan.task, plan.rerun_of, plan.config, plan.earlier)
    state, outputs = _rerun_task(
        plan.task, plan.earlier, plan.config, settings, plan.architectures, plan.rerun_of, parent_run_id
    )
    state = dataclasses.replace(state, config=plan.config)
    return finish_rerun_tracking(settings, plan.task, plan.rerun_of, parent_run_id, state, outputs)
