"""Short, printable summaries of what a flow produced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqflow.contracts import ContractReport
from seqflow.datasets import SPLITS, SplitFiles
from seqflow.tokenise import TokenisedData


@dataclass(frozen=True)
class ValidationSummary:
    source: str
    rows: dict[str, int]
    vocab_size: int
    max_length: int
    padding: str
    oov_rate: dict[str, float]
    dataset_digest: str
    contract_lines: list[str]
    contract_results_paths: list[Path]
    tokenised_dir: Path

    def render(self) -> str:
        rows = ", ".join(f"{split} {self.rows[split]:,}" for split in SPLITS)
        oov = ", ".join(f"{split} {self.oov_rate[split]:.2%}" for split in SPLITS)
        lines = [
            f"source          {self.source}",
            f"rows            {rows}",
            f"vocabulary      {self.vocab_size:,} tokens; {self.max_length} ids per review, padding {self.padding}",
            f"OOV rate        {oov}",
            f"dataset digest  {self.dataset_digest[:16]}",
            *(f"contract        {line}" for line in self.contract_lines),
            f"outputs         {self.tokenised_dir}",
        ]
        return "\n".join(lines)


def summarise_validation(
    split_files: SplitFiles, tokenised: TokenisedData, reports: list[ContractReport]
) -> ValidationSummary:
    return ValidationSummary(
        source=split_files.source,
        rows=dict(split_files.rows),
        vocab_size=tokenised.vocab_size,
        max_length=tokenised.max_length,
        padding=tokenised.padding,
        oov_rate=dict(tokenised.oov_rate),
        dataset_digest=split_files.digest,
        contract_lines=[report.summary_line() for report in reports],
        contract_results_paths=[report.results_path for report in reports],
        tokenised_dir=tokenised.tokenised_dir,
    )
