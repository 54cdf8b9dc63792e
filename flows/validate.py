"""``seqflow validate``: download -> raw contract -> tokenise -> tokenised contract."""

from __future__ import annotations

from prefect import flow

from seqflow.config import PipelineConfig
from seqflow.summary import ValidationSummary, summarise_validation
from seqflow.tasks.data import check_raw_contract, check_tokenised_contract, download_reviews, tokenise_reviews


@flow(name="seqflow-validate", log_prints=True)
def validate_flow(config: PipelineConfig) -> ValidationSummary:
    """Prepare validated, tokenised data for training, or stop with the contract that failed."""
    split_files = download_reviews(config.data, config.seed, config.artifacts_dir)
    raw_report = check_raw_contract(split_files, config.contracts)
    tokenised = tokenise_reviews(split_files, config.tokenisation, config.artifacts_dir)
    tokenised_report = check_tokenised_contract(tokenised, config.tokenisation, config.contracts)
    return summarise_validation(split_files, tokenised, [raw_report, tokenised_report])
