"""The sentiment pipeline's tracking steps around the trained models: opening an execution's parent run
(closing what dead executions left behind) and registering and promoting the evaluated models.

The train and evaluate steps are the Prefect tasks of :mod:`seqflow.tasks.sentiment`; what they return is in
:mod:`seqflow.sentiment.records` (re-exported here for earlier imports), the comparison table in
:mod:`seqflow.sentiment.comparison`. MLflow runs are always closed: a step that fails marks the run it owns
FAILED before raising.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from seqflow.config import PipelineConfig, PromotionConfig
from seqflow.core.promotion import PromotionDecision, decide_promotion
from seqflow.core.tracking import EXECUTION_ROLES, FLOW_RUN_TAG, ROLE_TAG, RegisteredVersion, Tracker
from seqflow.core.contracts import ContractReport
from seqflow.sentiment.datasets import SplitFiles
from seqflow.sentiment.records import (  # noqa: F401 - re-exported: imported from here before the split
    FINGERPRINT_TAG,
    INPUT_EXAMPLE_TEXTS,
    RESUMED_FROM_EPOCH_TAG,
    EvaluatedModel,
    TrainedModel,
    dataset_tags,
)
from seqflow.sentiment.records import dataset_tags as _dataset_tags  # noqa: F401 - read by seqflow.core.state
from seqflow.sentiment.registry import VIA_RUN, audit_tags, champion_accuracy_on
from seqflow.sentiment.tokenise import TokenisedData

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class RegistrationOutcome:
    """What registration did; the same record for sentiment and character models."""

    versions: list[RegisteredVersion]
    decision: PromotionDecision | None
    champion_version: str | None

    @classmethod
    def now(cls, tracker: Tracker, versions: list[RegisteredVersion], decision: PromotionDecision | None) -> RegistrationOutcome:
        """The outcome with the champion as the registry has it now (moved by ``decision`` or not)."""
        champion = tracker.champion()
        return cls(versions=versions, decision=decision, champion_version=str(champion.version) if champion else None)

    @property
    def decision_reason(self) -> str:
        return self.decision.reason if self.decision else "no model evaluated"

    def version_of(self, run_id: str) -> str | None:
        """The version registered from the model of ``run_id``, or None."""
        return next((version.version for version in self.versions if version.run_id == run_id), None)

    def is_champion(self, run_id: str) -> bool:
        version = self.version_of(run_id)
        return version is not None and version == self.champion_version


def start_pipeline_run(
    tracker: Tracker,
    config: PipelineConfig,
    split_files: SplitFiles,
    tokenised: TokenisedData,
    contract_reports: list[ContractReport],
    flow_run_id: str | None,
) -> str:
    """Create the parent run of one pipeline execution, with params, data tags and contract results.

    First, runs that a killed earlier execution left RUNNING are closed as KILLED, and versions it registered
    are withdrawn (see :func:`close_runs_of_dead_executions`).
    """
    close_runs_of_dead_executions(tracker)
    run_id = tracker.start_run(
        run_name=f"{config.profile}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={ROLE_TAG: "pipeline", FLOW_RUN_TAG: flow_run_id, "profile": config.profile, **dataset_tags(split_files, tokenised)},
    )
    with tracker.closing_on_failure(run_id):
        tracker.log_params(run_id, config.to_flat_dict())
        tracker.log_metrics(
            run_id,
            {f"rows_{split}": rows for split, rows in split_files.rows.items()}
            | {f"oov_rate_{split}": rate for split, rate in tokenised.oov_rate.items()}
            | {"vocab_size": tokenised.vocab_size},
        )
        for report in contract_reports:
            tracker.log_artifact(run_id, report.report_dir, f"contracts/{report.contract}")
    return run_id


def close_runs_of_dead_executions(tracker: Tracker) -> None:
    """End the RUNNING runs of processes on this host that are gone (``kill -9``, out of memory, power cut) as
    KILLED, and withdraw the registered versions of executions whose parent run was among them."""
    closed = tracker.close_runs_of_dead_processes()
    for run in closed:
        logger.warning(
            "closed MLflow run %s (%s) as KILLED: its process %s is gone", run.run_id, run.run_name, run.owner.describe()
        )
    dead_parents = [run.run_id for run in closed if run.role in EXECUTION_ROLES]
    withdrawn = tracker.withdraw_versions_of_executions(dead_parents)
    if withdrawn:
        logger.warning(
            "deleted version(s) %s of %r: registered by an execution that never finished",
            ", ".join(withdrawn),
            tracker.settings.registered_model_name,
        )


def _champion_accuracy_on(tracker: Tracker, champion, split_files: SplitFiles) -> float:  # noqa: ANN001
    """The champion's test accuracy on this execution's test split (see :func:`registry.champion_accuracy_on`)."""
    return champion_accuracy_on(tracker, champion, split_files.digest, lambda: split_files.test_path)


def apply_promotion(
    tracker: Tracker, decision: PromotionDecision, parent_run_id: str, via: str, previous_champion: str | None
) -> None:
    """Move ``champion`` to the challenger with an audit trail, or tag why not; record the reason on the run."""
    if decision.promote:
        tracker.set_champion(decision.challenger_version, audit_tags(decision.reason, via, previous_champion))
    else:
        tracker.tag_version(decision.challenger_version, {"not_promoted_reason": decision.reason})
    tracker.set_tags(parent_run_id, {"promotion": decision.reason})


def register_and_promote(
    tracker: Tracker,
    evaluated: list[EvaluatedModel],
    split_files: SplitFiles,
    promotion: PromotionConfig,
    parent_run_id: str,
) -> RegistrationOutcome:
    """Register every evaluated model, then move ``champion`` to the best one if it passes the gates.

    All or nothing: if anything fails or the process is interrupted here, this execution's versions are deleted
    again and the alias stays on (or goes back to) the previous champion. A process killed outright leaves them
    to the next execution's :func:`close_runs_of_dead_executions`.
    """
    candidates = [
        (
            model.architecture,
            model.run_id,
            model.model_uri,
            {
                "architecture": model.architecture,
                "run_id": model.run_id,
                "parent_run_id": parent_run_id,
                "dataset_digest": model.dataset_digest,
                **{f"test_{key}": f"{value:.6f}" for key, value in model.test_metrics.items()},
                "test_accuracy": f"{model.test_metrics['accuracy']:.6f}",
            },
        )
        for model in evaluated
    ]
    versions = tracker.register_versions(candidates)
    previous_champion: str | None = None
    try:
        best = max(versions, key=lambda version: version.test_accuracy)
        champion = tracker.champion()
        previous_champion = str(champion.version) if champion is not None else None
        champion_accuracy = (
            _champion_accuracy_on(tracker, champion, split_files) if champion is not None else None
        )
        decision = decide_promotion(
            best.version,
            best.test_accuracy,
            str(champion.version) if champion is not None else None,
            champion_accuracy,
            promotion,
        )
        apply_promotion(tracker, decision, parent_run_id, VIA_RUN, previous_champion)
    except BaseException:
        # Also when interrupted after the alias moved: the alias goes back to the version it was on.
        tracker.withdraw_versions([version.version for version in versions], previous_champion)
        raise
    return RegistrationOutcome.now(tracker, versions, decision)


