"""The raw-review data contract (Great Expectations) on real IMDB reviews and on deliberately broken splits.

Broken splits are built from a real stratified sample, changed in one way each, written with the project's
own ``write_splits`` and validated with ``validate_raw_splits``; the test then reads the error a user sees.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from seqflow.sentiment.config import ContractConfig, DataConfig
from seqflow.core.contracts import raise_on_failure
from seqflow.sentiment.contracts import validate_raw_splits
from seqflow.data_contracts.raw_reviews import SUITE_NAME, build_raw_reviews_suite
from seqflow.sentiment.datasets import SPLITS, SplitFiles, split_source, write_splits
from seqflow.core.errors import ContractViolation
from seqflow.sentiment.sources import SourceData, load_source

SEED = 7
SAMPLE = DataConfig(limit=2_000)

Splits = dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def source(embedded_reviews: pd.DataFrame) -> SourceData:
    return SourceData(spec="embedded", train=embedded_reviews)


@pytest.fixture(scope="module")
def sample_splits(source: SourceData) -> Splits:
    """A 2,000-review stratified sample (about 1,440 train / 160 validation / 400 test); copy before changing."""
    return split_source(source, SAMPLE, SEED)


def _copy(splits: Splits) -> Splits:
    return {name: frame.copy() for name, frame in splits.items()}


def _write(splits: Splits, source: SourceData, folder: Path) -> SplitFiles:
    return write_splits(splits, source, SAMPLE, SEED, folder)


def _violation(split_files: SplitFiles, contracts: ContractConfig | None = None) -> str:
    """The ContractViolation message for ``split_files``; fails the test when the contract passes."""
    report = validate_raw_splits(split_files, contracts or ContractConfig())
    assert not report.success
    with pytest.raises(ContractViolation) as caught:
        raise_on_failure(report)
    message = str(caught.value)
    assert message.startswith(f"data contract {SUITE_NAME!r} failed")
    # The message points at the saved results, and they exist.
    assert caught.value.report_path == str(report.results_path)
    assert report.results_path.is_file()
    assert f"full results: {report.results_path}" in message
    return message


def _failure_lines(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith("  - ")]


# --- real data passes ------------------------------------------------------------------------------------


def test_all_real_reviews_pass_the_raw_contract(source: SourceData, tmp_path: Path) -> None:
    data = DataConfig()  # all 25,000 reviews
    split_files = write_splits(split_source(source, data, SEED), source, data, SEED, tmp_path)
    assert sum(split_files.rows.values()) == 25_000

    report = validate_raw_splits(split_files, ContractConfig())

    assert report.success, report.failure_message()
    assert raise_on_failure(report) is report
    assert report.failed == []
    # 6 expectations per split, plus the leakage check on test.
    assert report.evaluated == 6 * len(SPLITS) + 1
    assert report.summary_line() == f"{SUITE_NAME}: 19 expectations over 3 splits passed"
    assert report.report_dir == split_files.dataset_dir / "contracts" / SUITE_NAME

    results = json.loads(report.results_path.read_text())
    assert sorted(results) == sorted(SPLITS)
    assert all(results[split]["success"] for split in SPLITS)
    assert len(results["test"]["results"]) == 7
    assert report.data_docs_index_path is not None
    assert report.data_docs_index_path == report.report_dir / "data_docs" / "index.html"
    assert report.data_docs_index_path.is_file()
    # Data Docs hold one validation page per split.
    assert len(list((report.report_dir / "data_docs" / "validations").rglob("*.html"))) == len(SPLITS)


def test_a_rerun_replaces_the_previous_report(source: SourceData, sample_splits: Splits, tmp_path: Path) -> None:
    split_files = _write(_copy(sample_splits), source, tmp_path)
    first = validate_raw_splits(split_files, ContractConfig())
    stale = first.report_dir / "stale.txt"
    stale.write_text("from an earlier run")

    second = validate_raw_splits(split_files, ContractConfig())

    assert first.success and second.success
    assert not stale.exists()
    assert second.results_path.is_file() and second.data_docs_index_path is not None


# --- broken data fails with a message naming split, column, expectation, counts and examples -------------


def _set_label(split: str, rows: list[int], value: object) -> Callable[[Splits], None]:
    def change(splits: Splits) -> None:
        frame = splits[split]
        if isinstance(value, float) and np.isnan(value):
            frame["label"] = frame["label"].astype(float)
        frame.loc[rows, "label"] = value

    return change


def _set_text(split: str, rows: list[int], value: object) -> Callable[[Splits], None]:
    def change(splits: Splits) -> None:
        splits[split].loc[rows, "text"] = value

    return change


def _empty(split: str) -> Callable[[Splits], None]:
    def change(splits: Splits) -> None:
        splits[split] = splits[split].iloc[:0]

    return change


# id, change, expectation, split, column, failing rows, the examples shown. Every expectation of the suite
# appears here at least once (checked by test_every_raw_expectation_has_a_failing_case).
BROKEN_CASES = [
    ("label-2", _set_label("train", [0, 1, 2], 2), "expect_column_values_to_be_in_set", "train", "label", 3, "[2, 2, 2]"),
    ("label-minus-1", _set_label("validation", [5], -1), "expect_column_values_to_be_in_set", "validation", "label", 1, "[-1]"),
    ("empty-text", _set_text("validation", [3], ""), "expect_column_values_to_not_match_regex", "validation", "text", 1, "['']"),
    (
        "whitespace-text",
        _set_text("test", [1, 4], "  \n\t "),
        "expect_column_values_to_not_match_regex",
        "test",
        "text",
        2,
        "['  \\n\\t ', '  \\n\\t ']",
    ),
    ("nan-text", _set_text("train", [5], np.nan), "expect_column_values_to_not_be_null", "train", "text", 1, "[None]"),
    ("nan-label", _set_label("train", [0, 7], np.nan), "expect_column_values_to_not_be_null", "train", "label", 2, "[nan, nan]"),
    ("empty-split", _empty("validation"), "expect_table_row_count_to_be_between", "validation", None, None, None),
]


@pytest.mark.parametrize(
    ("change", "expectation", "split", "column", "failing", "examples"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN_CASES],
)
def test_broken_raw_data_fails_with_a_precise_message(
    source: SourceData,
    sample_splits: Splits,
    tmp_path: Path,
    change: Callable[[Splits], None],
    expectation: str,
    split: str,
    column: str | None,
    failing: int | None,
    examples: str | None,
) -> None:
    splits = _copy(sample_splits)
    change(splits)
    message = _violation(_write(splits, source, tmp_path))

    lines = [line for line in _failure_lines(message) if expectation in line and f"split {split!r}" in line]
    assert len(lines) == 1, message
    line = lines[0]
    if column:
        assert f"column {column!r}" in line
    if failing is not None:
        total = len(splits[split])
        assert f": {failing} of {total} rows fail ({failing / total:.2%})" in line
        assert line.endswith(f"; e.g. {examples}")
        # One broken thing, one failed expectation.
        assert len(_failure_lines(message)) == 1, message
    else:
        # An empty split: the row count says what happened, and the class balance says why it has no value.
        assert line.endswith("; observed 0")
        assert "'min_value': 1" in line
        assert any(
            f"split {split!r}, column 'label': expect_column_mean_to_be_between" in other
            and other.endswith("; nothing to observe (no non-missing values)")
            for other in _failure_lines(message)
        ), message
        assert len(_failure_lines(message)) == 2, message


def test_string_label_is_reported_by_value(tmp_path: Path, sample_splits: Splits) -> None:
    """A CSV with one label 'pos' among 0/1: the source keeps the column as text; the contract names 'pos'."""
    reviews = pd.concat([sample_splits[split] for split in SPLITS], ignore_index=True)
    reviews["label"] = reviews["label"].astype(object)
    reviews.loc[10, "label"] = "pos"
    path = tmp_path / "reviews.csv"
    reviews.to_csv(path, index=False)
    data = DataConfig(source=f"csv:{path}")
    source = load_source(data)
    assert source.train["label"].tolist()[10] == "pos"
    splits = split_source(source, data, SEED)
    split = next(name for name in SPLITS if (splits[name]["label"] == "pos").any())

    message = _violation(write_splits(splits, source, data, SEED, tmp_path / "artifacts"))

    total = len(splits[split])
    in_set = [line for line in _failure_lines(message) if "expect_column_values_to_be_in_set" in line]
    # Only the word fails the label set; '0' and '1' stored as text are the numbers they spell.
    assert in_set == [
        f"  - split {split!r}, column 'label': expect_column_values_to_be_in_set({{'value_set': [0, 1]}}): "
        f"1 of {total} rows fail ({1 / total:.2%}); e.g. ['pos']"
    ]
    # The class balance cannot be computed over a word, and the message says so instead of staying silent.
    mean = [line for line in _failure_lines(message) if "expect_column_mean_to_be_between" in line]
    assert len(mean) == 1 and f"split {split!r}" in mean[0]
    assert "could not be evaluated: unsupported operand type(s)" in mean[0]
    assert len(_failure_lines(message)) == 2, message


def test_labels_of_a_pandas_string_column_are_read_as_numbers(
    source: SourceData, sample_splits: Splits, tmp_path: Path
) -> None:
    splits = _copy(sample_splits)
    validation = splits["validation"]
    validation["label"] = validation["label"].astype(str).astype("string")
    validation.loc[2, "label"] = "neg"
    split_files = _write(splits, source, tmp_path)
    assert isinstance(pd.read_parquet(split_files.validation_path)["label"].dtype, pd.StringDtype)

    message = _violation(split_files)

    total = len(validation)
    assert (
        f"  - split 'validation', column 'label': expect_column_values_to_be_in_set({{'value_set': [0, 1]}}): "
        f"1 of {total} rows fail ({1 / total:.2%}); e.g. ['neg']"
    ) in _failure_lines(message)


def test_class_imbalance_fails_with_the_observed_share(
    source: SourceData, sample_splits: Splits, tmp_path: Path
) -> None:
    splits = _copy(sample_splits)
    train = splits["train"]
    positives = int(round(0.9 * len(train)))
    train["label"] = (np.arange(len(train)) < positives).astype(np.int64)

    message = _violation(_write(splits, source, tmp_path))

    [line] = _failure_lines(message)
    assert line.startswith("  - split 'train', column 'label': expect_column_mean_to_be_between(")
    assert "'min_value': 0.45, 'max_value': 0.55" in line
    observed = float(re.search(r"; observed ([0-9.]+)$", line).group(1))
    assert observed == pytest.approx(positives / len(train)) and observed == pytest.approx(0.9, abs=1e-3)


def test_class_balance_band_comes_from_config(source: SourceData, sample_splits: Splits, tmp_path: Path) -> None:
    splits = _copy(sample_splits)
    train = splits["train"]
    train["label"] = (np.arange(len(train)) < int(round(0.6 * len(train)))).astype(np.int64)
    split_files = _write(splits, source, tmp_path)

    assert validate_raw_splits(split_files, ContractConfig(class_balance_band=0.15)).success
    message = _violation(split_files, ContractConfig(class_balance_band=0.05))
    assert "expect_column_mean_to_be_between" in message and "observed 0.6" in message


def test_train_test_leakage_above_the_bound_fails(source: SourceData, sample_splits: Splits, tmp_path: Path) -> None:
    splits = _copy(sample_splits)
    test = splits["test"]
    copied = 50
    test.loc[: copied - 1, "text"] = splits["train"]["text"].iloc[:copied].to_numpy()

    message = _violation(_write(splits, source, tmp_path))

    total = len(test)
    assert _failure_lines(message) == [
        f"  - split 'test', column 'also_in_train': expect_column_values_to_be_in_set("
        f"{{'mostly': 0.99, 'value_set': [False]}}): {copied} of {total} rows fail ({copied / total:.2%}); "
        f"e.g. [True, True, True, True, True]"
    ]


def test_leakage_within_the_bound_passes(source: SourceData, sample_splits: Splits, tmp_path: Path) -> None:
    splits = _copy(sample_splits)
    test = splits["test"]
    # 2 of ~400 test reviews (0.5%) also in train: IMDB itself has such duplicates; the bound is 1%.
    test.loc[:1, "text"] = splits["train"]["text"].iloc[:2].to_numpy()

    report = validate_raw_splits(_write(splits, source, tmp_path), ContractConfig())

    assert report.success, report.failure_message()


def test_several_problems_are_all_listed(source: SourceData, sample_splits: Splits, tmp_path: Path) -> None:
    splits = _copy(sample_splits)
    _set_label("train", [0], 2)(splits)
    _set_text("test", [3], "")(splits)
    _set_text("validation", [2], None)(splits)

    message = _violation(_write(splits, source, tmp_path))

    lines = _failure_lines(message)
    assert len(lines) == 3, message
    assert any("split 'train', column 'label': expect_column_values_to_be_in_set" in line for line in lines)
    assert any("split 'test', column 'text': expect_column_values_to_not_match_regex" in line for line in lines)
    assert any("split 'validation', column 'text': expect_column_values_to_not_be_null" in line for line in lines)
    assert "data docs: " in message and message.rstrip().endswith("index.html")


# --- the suite itself --------------------------------------------------------------------------------------


def _expectations(split: str, contracts: ContractConfig | None = None) -> list[tuple[str, str | None, dict]]:
    suite = build_raw_reviews_suite(contracts or ContractConfig(), split)
    assert suite.name == f"{SUITE_NAME}.{split}"
    return [
        (expectation.expectation_type, expectation.configuration.kwargs.get("column"), dict(expectation.configuration.kwargs))
        for expectation in suite.expectations
    ]


def test_every_raw_expectation_has_a_failing_case() -> None:
    covered = {(case[2], case[4]) for case in BROKEN_CASES} | {
        ("expect_column_mean_to_be_between", "label"),  # test_class_imbalance_fails_with_the_observed_share
        ("expect_column_values_to_be_in_set", "also_in_train"),  # test_train_test_leakage_above_the_bound_fails
    }
    in_suites = {(kind, column) for split in SPLITS for kind, column, _ in _expectations(split)}
    assert in_suites == covered


def test_raw_bounds_come_from_contract_config() -> None:
    contracts = ContractConfig(class_balance_band=0.2, max_train_test_overlap=0.05)
    for split in SPLITS:
        kwargs = {(kind, column): kw for kind, column, kw in _expectations(split, contracts)}
        assert kwargs[("expect_column_mean_to_be_between", "label")]["min_value"] == pytest.approx(0.3)
        assert kwargs[("expect_column_mean_to_be_between", "label")]["max_value"] == pytest.approx(0.7)
        leakage = kwargs.get(("expect_column_values_to_be_in_set", "also_in_train"))
        # The leakage check exists on the test split only (train cannot leak into itself).
        if split == "test":
            assert leakage["mostly"] == pytest.approx(0.95)
            assert leakage["value_set"] == [False]
        else:
            assert leakage is None
