"""Tasks that load, split, check and tokenise the reviews."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from seqflow.config import ContractConfig, DataConfig, TokenisationConfig
from seqflow.core.contracts import ContractReport, raise_on_failure
from seqflow.sentiment.contracts import validate_raw_splits, validate_tokenised_arrays
from seqflow.sentiment.datasets import SplitFiles, split_source, write_splits
from seqflow.sentiment.sources import load_source
from seqflow.tasks.retry import retry_unless_bad_input
from seqflow.sentiment.tokenise import TokenisedData, pad_and_tokenise


@task(name="download", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input)
def download_reviews(data_config: DataConfig, seed: int, artifacts_dir: str) -> SplitFiles:
    """Load the source, split it (seeded, stratified) and write the splits with their digests."""
    source = load_source(data_config)
    splits = split_source(source, data_config, seed)
    return write_splits(splits, source, data_config, seed, Path(artifacts_dir))


@task(name="contracts-raw")
def check_raw_contract(split_files: SplitFiles, contracts: ContractConfig) -> ContractReport:
    """Validate raw reviews; a failure stops the flow before tokenisation."""
    return raise_on_failure(validate_raw_splits(split_files, contracts))


@task(name="tokenise")
def tokenise_reviews(split_files: SplitFiles, tokenisation: TokenisationConfig, artifacts_dir: str) -> TokenisedData:
    """Adapt the vocabulary on train and write padded id arrays for every split."""
    return pad_and_tokenise(split_files, tokenisation, Path(artifacts_dir))


@task(name="contracts-tokenised")
def check_tokenised_contract(
    tokenised: TokenisedData, tokenisation: TokenisationConfig, contracts: ContractConfig
) -> ContractReport:
    """Validate the padded arrays against bounds derived from the tokenisation settings."""
    return raise_on_failure(validate_tokenised_arrays(tokenised, tokenisation, contracts))
