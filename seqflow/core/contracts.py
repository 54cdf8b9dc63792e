"""Run a data contract (a suite in ``data_contracts/``) with Great Expectations and report the outcome plainly.

Shared by every pipeline. Each run validates one frame per split, saves the GX validation results as JSON and
builds GX Data Docs (HTML) in the report folder, so the flow can log both to MLflow. A failure becomes one
:class:`~seqflow.core.errors.ContractViolation` naming the contract, split, expectation, counts and examples.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqflow.core.files import partial_path, publish_directory
from seqflow.core.errors import ContractViolation

logger = logging.getLogger(__name__)

# Characters of a failing review shown in an error message.
EXAMPLE_CHARS = 60
# The one-page summary of a contract's results, next to its GX results and Data Docs.
SUMMARY_FILE = "summary.html"


@dataclass(frozen=True)
class ExpectationOutcome:
    split: str
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    element_count: int | None
    observed_value: Any
    examples: list[Any]
    kwargs: dict[str, Any]
    exception: str | None = None

    def describe(self) -> str:
        """One line: what was expected, how many rows broke it, and a few examples."""
        shown_kwargs = {k: v for k, v in self.kwargs.items() if k not in ("batch_id", "column")}
        column = f"column {self.column!r}: " if self.column else ""
        text = f"split {self.split!r}, {column}{self.expectation}({_short(shown_kwargs)})"
        if self.exception:
            return f"{text} could not be evaluated: {self.exception}"
        if self.unexpected_count is not None:
            share = f" ({self.unexpected_count / self.element_count:.2%})" if self.element_count else ""
            text += f": {self.unexpected_count} of {self.element_count} rows fail{share}"
        if self.observed_value is not None:
            text += f"; observed {self.observed_value!r}"
        elif not self.success and self.unexpected_count is None:
            # GX fails an aggregate (e.g. the mean) over an empty or all-missing column with observed value None.
            text += "; nothing to observe (no non-missing values)"
        if self.examples:
            text += f"; e.g. {self.examples}"
        return text


@dataclass(frozen=True)
class ContractReport:
    """The outcome of one contract over all splits, and where its files are."""

    contract: str
    success: bool
    report_dir: Path
    results_path: Path
    data_docs_index_path: Path | None
    evaluated: int
    failed: list[ExpectationOutcome] = field(default_factory=list)
    # The splits validated (the character contract has train and validation only). Reports saved before the
    # field existed came from the review contracts, which cover these three: the default reads them back.
    splits: tuple[str, ...] = ("train", "validation", "test")

    def summary_line(self) -> str:
        status = "passed" if self.success else f"FAILED ({len(self.failed)} expectation(s))"
        return f"{self.contract}: {self.evaluated} expectations over {len(self.splits)} splits {status}"

    def failure_message(self) -> str:
        lines = [f"data contract {self.contract!r} failed; nothing was trained:"]
        lines += [f"  - {outcome.describe()}" for outcome in self.failed]
        lines.append(f"  full results: {self.results_path}")
        if self.data_docs_index_path:
            lines.append(f"  data docs: {self.data_docs_index_path}")
        return "\n".join(lines)


def _short(value: Any, limit: int = EXAMPLE_CHARS) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """NumPy scalars to Python values, so messages read ``0.5`` and not ``np.float64(0.5)``."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _gx_context(data_docs_dir: Path):  # noqa: ANN202 - GX context classes are not public API
    # GX reports usage statistics and draws progress bars unless told not to; neither belongs in a pipeline log.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.add_data_docs_site(
        site_name="seqflow",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(data_docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


def run_contract(
    contract: str,
    frames: dict[str, pd.DataFrame],
    suites: dict[str, Any],
    report_dir: Path,
    examples_in_message: int,
) -> ContractReport:
    """Validate ``frames[split]`` against ``suites[split]`` for every split in ``frames``; save JSON results
    and Data Docs."""
    import great_expectations as gx

    report_dir = Path(report_dir)
    # Built in a folder of its own, then put in place whole: a rerun replaces the previous report instead of
    # mixing old and new Data Docs pages, and two runs on the same data never write into one folder.
    built_dir = partial_path(report_dir)
    data_docs_dir = built_dir / "data_docs"
    data_docs_dir.mkdir(parents=True)
    context = _gx_context(data_docs_dir)
    data_source = context.data_sources.add_pandas(contract)

    outcomes: list[ExpectationOutcome] = []
    raw_results: dict[str, Any] = {}
    for split in frames:
        batch_definition = data_source.add_dataframe_asset(name=split).add_batch_definition_whole_dataframe(split)
        suite = context.suites.add(suites[split])
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{contract}.{split}", data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{contract}.{split}",
                validation_definitions=[validation],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["seqflow"])],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples_in_message},
            )
        )
        checkpoint_result = checkpoint.run(batch_parameters={"dataframe": frames[split]})
        for validation_result in checkpoint_result.run_results.values():
            raw_results[split] = validation_result.to_json_dict()
            outcomes.extend(_outcomes(split, validation_result, examples_in_message))

    (built_dir / f"{contract}_results.json").write_text(json.dumps(raw_results, indent=2, default=str))
    (built_dir / SUMMARY_FILE).write_text(summary_html(contract, outcomes), encoding="utf-8")
    publish_directory(built_dir, report_dir)
    results_path = report_dir / f"{contract}_results.json"
    index = report_dir / "data_docs" / "index.html"
    failed = [outcome for outcome in outcomes if not outcome.success]
    report = ContractReport(
        contract=contract,
        success=not failed,
        report_dir=report_dir,
        results_path=results_path,
        data_docs_index_path=index if index.is_file() else None,
        evaluated=len(outcomes),
        failed=failed,
        splits=tuple(frames),
    )
    logger.info(report.summary_line())
    return report


def summary_html(contract: str, outcomes: list[ExpectationOutcome]) -> str:
    """One self-contained HTML page (inline style, no script): split x expectation, pass or fail, observed
    value and failing rows; readable in MLflow's artifact viewer, unlike the Data Docs folders."""
    from html import escape

    passed = sum(outcome.success for outcome in outcomes)
    rows = []
    for outcome in outcomes:
        shown = {k: v for k, v in outcome.kwargs.items() if k not in ("batch_id", "column")}
        observed = outcome.exception or ("" if outcome.observed_value is None else _short(outcome.observed_value, 80))
        failing = (
            f"{outcome.unexpected_count} of {outcome.element_count}" if outcome.unexpected_count is not None else ""
        )
        rows.append(
            f"<tr class={'pass' if outcome.success else 'fail'}><td>{escape(outcome.split)}</td>"
            f"<td>{escape(outcome.expectation)}</td><td>{escape(outcome.column or '')}</td>"
            f"<td>{escape(_short(shown, 80))}</td><td>{'pass' if outcome.success else 'FAIL'}</td>"
            f"<td>{escape(str(observed))}</td><td>{escape(failing)}</td></tr>"
        )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(contract)} contract</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left;font-size:13px}.pass td:nth-child(5){color:#176f2c}"
        ".fail td{background:#fde8e8}.fail td:nth-child(5){color:#b00020;font-weight:bold}</style></head><body>"
        f"<h1>Data contract {escape(contract)}</h1><p>{passed} of {len(outcomes)} expectations passed. Full GX "
        "results: <code>*_results.json</code>; Data Docs: <code>data_docs/index.html</code>.</p>"
        "<table><tr><th>split</th><th>expectation</th><th>column</th><th>settings</th><th>result</th>"
        f"<th>observed</th><th>failing rows</th></tr>{''.join(rows)}</table></body></html>\n"
    )


def contracts_description(reports: list[ContractReport]) -> str:
    """The pass counts of ``reports`` as markdown, for an execution's parent run description."""
    lines = ["**Data contracts** (per contract: `contracts/<name>/summary.html`):", ""]
    for report in reports:
        passed = report.evaluated - len(report.failed)
        lines.append(
            f"- `{report.contract}`: {passed} of {report.evaluated} expectations passed over "
            f"{', '.join(report.splits)}" + ("" if report.success else " - FAILED")
        )
    return "\n".join(lines)


def _outcomes(split: str, validation_result: Any, examples_in_message: int) -> list[ExpectationOutcome]:
    outcomes = []
    for result in validation_result.results:
        config = result.expectation_config
        details = result.result or {}
        exception = _exception_text(result.exception_info)
        examples = [_short(_plain(value)) if isinstance(value, str) else _plain(value)
                    for value in (details.get("partial_unexpected_list") or [])[:examples_in_message]]
        outcomes.append(
            ExpectationOutcome(
                split=split,
                expectation=config.type,
                column=config.kwargs.get("column"),
                success=bool(result.success),
                unexpected_count=details.get("unexpected_count"),
                element_count=details.get("element_count"),
                observed_value=_plain(details.get("observed_value")),
                examples=examples,
                kwargs=dict(config.kwargs),
                exception=exception,
            )
        )
    return outcomes


def _exception_text(exception_info: Any) -> str | None:
    """The first line of the error that stopped an expectation from being evaluated, or None.

    GX 1.x reports an expectation's own error as ``{"raised_exception": ..., "exception_message": ...}`` but
    a failed metric (e.g. the mean of a text column) as ``{"MetricConfigurationID(...)": {that same dict}}``.
    """
    if not isinstance(exception_info, dict):
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            message = str(info.get("exception_message") or "").strip()
            return _short(message.splitlines()[0] if message else "error", 200)
    return None


def raise_on_failure(report: ContractReport) -> ContractReport:
    """Return ``report`` when it passed; otherwise raise one readable :class:`ContractViolation`."""
    if not report.success:
        raise ContractViolation(report.failure_message(), report_path=str(report.results_path))
    return report
