"""``seqflow charlm run``: text -> contract -> character ids -> one child run per architecture -> registry;
``seqflow charlm rerun TASK``: one of those tasks again on an earlier execution's outputs."""

from __future__ import annotations

import dataclasses

from prefect import flow

from seqflow.core.caching import cached
from seqflow.charlm.steps import CharRunSummary
from seqflow.config import CharLMConfig
from seqflow.core.errors import SeqflowError
from seqflow.core.execution import InlineTaskRunner
from seqflow.flows.sentiment import evaluated_models
from seqflow.core.state import CharLMState
from seqflow.core.rerun import CHARLM, RerunPlan, RerunSummary, registration_lines, swap_models
from seqflow.core.settings import TrackingSettings
from seqflow.tasks.charlm import (
    check_char_contract,
    encode_text,
    evaluate_char,
    finish_charlm_tracking,
    load_text,
    register_char_models,
    start_charlm_tracking,
    train_char,
)
from seqflow.tasks.rerun import close_rerun_training, finish_rerun_tracking, open_evaluation_run, start_rerun_tracking
from seqflow.tasks.training import close_runs_of_failed_flow


@flow(
    name="seqflow-charlm",
    task_runner=InlineTaskRunner(),
    on_failure=[close_runs_of_failed_flow],
    on_crashed=[close_runs_of_failed_flow],
)
def charlm_flow(config: CharLMConfig, settings: TrackingSettings) -> CharRunSummary:
    """Train, evaluate and register every configured character architecture; ``settings`` should be the
    charlm ones (:meth:`TrackingSettings.for_charlm`), so the sentiment registry is never touched.

    Every task but the tracking ones is cached like the sentiment flow's (see :mod:`seqflow.core.caching`): a
    repeated execution with the same inputs reuses the earlier results, MLflow runs and registered versions,
    under a new parent run."""
    artifacts_dir = config.artifacts_dir
    split_files = cached(load_text, artifacts_dir)(config.data, config.seed, artifacts_dir)
    contract_report = cached(check_char_contract, artifacts_dir)(split_files, config.contracts)
    encoded = cached(encode_text, artifacts_dir)(split_files, artifacts_dir, config.data.min_char_count)
    parent_run_id = start_charlm_tracking(settings, config, split_files, encoded, [contract_report])
    train, evaluate = cached(train_char, artifacts_dir), cached(evaluate_char, artifacts_dir)
    submitted = []
    for architecture in config.training.architectures:
        trained = train.submit(settings, architecture, config, split_files, encoded, parent_run_id)
        submitted.append((trained, evaluate.submit(settings, trained, encoded, config)))
    evaluated = evaluated_models(submitted)
    registration = cached(register_char_models, artifacts_dir)(settings, evaluated, encoded, config, parent_run_id)
    state = CharLMState(
        config, split_files, encoded, [contract_report], [trained.result() for trained, _ in submitted], evaluated,
        registration,
    )
    return finish_charlm_tracking(settings, parent_run_id, evaluated, registration, state)


def _rerun_char_task(plan: RerunPlan, settings: TrackingSettings, parent_run_id: str) -> tuple[CharLMState, list[str]]:
    """Run ``plan.task`` past the cache; returns the state with its output swapped in, and what it produced."""
    earlier, config, rerun_of = plan.earlier, plan.config, plan.rerun_of
    artifacts_dir = config.artifacts_dir

    def forced(task):  # noqa: ANN001, ANN202 - a Prefect task in, the same task forced past the cache out
        return cached(task, artifacts_dir, refresh=True)

    if plan.task == "load":
        split_files = forced(load_text)(config.data, config.seed, artifacts_dir)
        same = "same content as before" if split_files.digest == earlier.split_files.digest else "content changed"
        return dataclasses.replace(earlier, split_files=split_files), [f"text splits {split_files.dataset_dir} ({same})"]
    if plan.task == "validate":
        report = forced(check_char_contract)(earlier.split_files, config.contracts)
        return dataclasses.replace(earlier, contract_reports=[report]), [report.summary_line()]
    if plan.task == "encode":
        encoded = forced(encode_text)(earlier.split_files, artifacts_dir, config.data.min_char_count)
        same = "same ids as before" if encoded.ids_digest == earlier.encoded.ids_digest else "ids changed"
        return dataclasses.replace(earlier, encoded=encoded), [f"character ids {encoded.encoded_dir} ({same})"]
    if plan.task == "train":
        retrained = {}
        for architecture in plan.architectures:
            trained = forced(train_char)(settings, architecture, config, earlier.split_files, earlier.encoded, parent_run_id)
            close_rerun_training(settings, trained, rerun_of)
            retrained[architecture] = trained
        trained_models = swap_models(earlier.trained, retrained)
        outputs = [f"{arch}: new child run {model.run_id}, {model.epochs_run} epochs" for arch, model in retrained.items()]
        return dataclasses.replace(earlier, trained=trained_models), outputs
    if plan.task == "evaluate":
        reevaluated = {}
        for architecture in plan.architectures:
            target = open_evaluation_run(settings, earlier.trained_model(architecture), parent_run_id, rerun_of, CHARLM)
            reevaluated[architecture] = forced(evaluate_char)(settings, target, earlier.encoded, config)
        evaluated = swap_models(earlier.evaluated, reevaluated)
        outputs = [
            f"{arch}: new child run {model.run_id}, validation perplexity {model.val_perplexity:.3f}"
            for arch, model in reevaluated.items()
        ]
        return dataclasses.replace(earlier, evaluated=evaluated), outputs
    if plan.task == "register":
        registration = forced(register_char_models)(settings, earlier.evaluated, earlier.encoded, config, parent_run_id)
        return dataclasses.replace(earlier, registration=registration), registration_lines(registration)
    raise SeqflowError(f"cannot rerun {plan.task!r} of a charlm execution")


@flow(name="seqflow-charlm-rerun", on_failure=[close_runs_of_failed_flow], on_crashed=[close_runs_of_failed_flow])
def charlm_rerun_flow(plan: RerunPlan, settings: TrackingSettings) -> RerunSummary:
    """Rerun exactly ``plan.task`` on the outputs of the charlm execution ``plan.rerun_of``; nothing downstream."""
    parent_run_id = start_rerun_tracking(settings, plan.task, plan.rerun_of, plan.config, plan.earlier, CHARLM)
    state, outputs = _rerun_char_task(plan, settings, parent_run_id)
    state = dataclasses.replace(state, config=plan.config)
    return finish_rerun_tracking(settings, plan.task, plan.rerun_of, parent_run_id, state, outputs)
