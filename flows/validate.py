"""``seqflow validate``: download -> raw contract -> tokenise -> tokenised contract."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.runtime import flow_run

from seqflow.core.caching import cached, task_statuses
from seqflow.sentiment.config import PipelineConfig
from seqflow.core.contracts import ContractReport
from seqflow.sentiment.datasets import SplitFiles
from seqflow.sentiment.summary import ValidationSummary, summarise_validation
from seqflow.tasks.sentiment import check_raw, check_tokenised, download, tokenise
from seqflow.sentiment.tokenise import TokenisedData


@dataclass(frozen=True)
class ValidatedData:
    split_files: SplitFiles
    tokenised: TokenisedData
    contract_reports: list[ContractReport]


def prepare_validated_data(config: PipelineConfig) -> ValidatedData:
    """The data steps every flow starts with; called inside a flow, so each is a tracked task run, cached on
    its inputs' content, its config slice and its code (see :mod:`seqflow.core.caching`)."""
    artifacts_dir = config.artifacts_dir
    split_files = cached(download, artifacts_dir)(config.data, config.seed, artifacts_dir)
    raw_report = cached(check_raw, artifacts_dir)(split_files, config.contracts)
    tokenised = cached(tokenise, artifacts_dir)(split_files, config.tokenisation, artifacts_dir)
    tokenised_report = cached(check_tokenised, artifacts_dir)(tokenised, config.tokenisation, config.contracts)
    return ValidatedData(split_files, tokenised, [raw_report, tokenised_report])


@flow(name="seqflow-validate")
def validate_flow(config: PipelineConfig) -> ValidationSummary:
    """Prepare validated, tokenised data for training, or stop with the contract that failed."""
    data = prepare_validated_data(config)
    statuses = task_statuses(config.artifacts_dir, flow_run.get_id())
    return summarise_validation(data.split_files, data.tokenised, data.contract_reports, statuses)
