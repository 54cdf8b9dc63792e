"""Short, printable summaries of what a flow produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seqflow.core.contracts import ContractReport
from seqflow.core.task_status import TaskStatus, render_task_statuses  # noqa: F401 - re-exported for earlier imports
from seqflow.sentiment.datasets import SPLITS, SplitFiles
from seqflow.sentiment.tokenise import TokenisedData


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
    tasks: list[TaskStatus] = field(default_factory=list)

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
            *render_task_statuses(self.tasks),
        ]
        return "\n".join(lines)


def summarise_validation(
    split_files: SplitFiles,
    tokenised: TokenisedData,
    reports: list[ContractReport],
    tasks: list[TaskStatus] | None = None,
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
        tasks=list(tasks or []),
    )
