"""``seqflow validate``: download -> raw contract -> tokenise -> tokenised contract."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from seqflow.config import PipelineConfig
from seqflow.contracts import ContractReport
from seqflow.datasets import SplitFiles
from seqflow.summary import ValidationSummary, summarise_validation
from seqflow.tasks.data import check_raw_contract, check_tokenised_contract, download_reviews, tokenise_reviews
from seqflow.tokenise import TokenisedData


@dataclass(frozen=True)
class ValidatedData:
    split_files: SplitFiles
    tokenised: TokenisedData
    contract_reports: list[ContractReport]


def prepare_validated_data(config: PipelineConfig) -> ValidatedData:
    """The data steps every flow starts with; called inside a flow, so each is a tracked task run."""
    split_files = download_reviews(config.data, config.seed, config.artifacts_dir)
    raw_report = check_raw_contract(split_files, config.contracts)
    tokenised = tokenise_reviews(split_files, config.tokenisation, config.artifacts_dir)
    tokenised_report = check_tokenised_contract(tokenised, config.tokenisation, config.contracts)
    return ValidatedData(split_files, tokenised, [raw_report, tokenised_report])


@flow(name="seqflow-validate")
def validate_flow(config: PipelineConfig) -> ValidationSummary:
    """Prepare validated, tokenised data for training, or stop with the contract that failed."""
    data = prepare_validated_data(config)
    return summarise_validation(data.split_files, data.tokenised, data.contract_reports)
