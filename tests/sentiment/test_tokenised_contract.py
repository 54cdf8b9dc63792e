"""The tokenised-review data contract (Great Expectations) on real padded arrays and on broken numpy arrays.

Real arrays come from the project's own ``pad_and_tokenise`` on a stratified sample of the embedded IMDB
reviews. Broken arrays are small hand-built ones, passed to ``validate_tokenised_arrays`` through ``arrays=``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from seqflow.sentiment.config import ContractConfig, DataConfig, TokenisationConfig
from seqflow.core.contracts import raise_on_failure
from seqflow.sentiment.contracts import summarise_padded_rows, validate_tokenised_arrays
from seqflow.data_contracts.tokenised_reviews import SUITE_NAME, build_tokenised_reviews_suite
from seqflow.sentiment.datasets import SPLITS, SplitFiles, split_source, write_splits
from seqflow.core.errors import ContractViolation
from seqflow.sentiment.sources import SourceData
from seqflow.sentiment.tokenise import TokenisedData, load_arrays, pad_and_tokenise

SEED = 11
Arrays = dict[str, np.ndarray]

# Small hand-built arrays: 40 rows per split of 12 ids from a 50-word vocabulary.
ROWS, MAX_LENGTH, VOCAB_SIZE = 40, 12, 50


# --- real data passes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_split_files(embedded_reviews: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> SplitFiles:
    source = SourceData(spec="embedded", train=embedded_reviews)
    data = DataConfig(limit=3_000)
    return write_splits(split_source(source, data, SEED), source, data, SEED, tmp_path_factory.mktemp("artifacts"))


def _real_tokenisation(padding: str) -> TokenisationConfig:
    # 10,000 words keep the mean OOV share near 6% on 2,160 training reviews; 5,000 would sit at the 10% bound.
    return TokenisationConfig(vocab_size=10_000, max_length=120, padding=padding, truncation=padding)


@pytest.fixture(scope="module", params=["post", "pre"])
def real_tokenised(request: pytest.FixtureRequest, real_split_files: SplitFiles) -> tuple[TokenisedData, TokenisationConfig]:
    tokenisation = _real_tokenisation(request.param)
    artifacts = real_split_files.dataset_dir.parent.parent
    return pad_and_tokenise(real_split_files, tokenisation, artifacts), tokenisation


def test_real_padded_arrays_pass_the_tokenised_contract(real_tokenised: tuple[TokenisedData, TokenisationConfig]) -> None:
    tokenised, tokenisation = real_tokenised
    report = validate_tokenised_arrays(tokenised, tokenisation, ContractConfig())

    assert report.success, report.failure_message()
    assert raise_on_failure(report) is report
    assert report.evaluated == 8 * len(SPLITS)
    assert report.summary_line() == f"{SUITE_NAME}: 24 expectations over 3 splits passed"
    assert report.report_dir == tokenised.tokenised_dir / "contracts" / SUITE_NAME
    results = json.loads(report.results_path.read_text())
    assert sorted(results) == sorted(SPLITS) and all(results[split]["success"] for split in SPLITS)
    assert report.data_docs_index_path == report.report_dir / "data_docs" / "index.html"
    assert report.data_docs_index_path.is_file()

    # The arrays really are what the contract says: padding on the configured side, in-range ids.
    arrays = load_arrays(tokenised)
    x_train = arrays["x_train"]
    assert x_train.shape[1] == tokenisation.max_length
    padded = (x_train == 0).any(axis=1)
    assert padded.any() and (~padded).any()
    pad_column = -1 if tokenisation.padding == "post" else 0
    assert (x_train[padded, pad_column] == 0).all()


def test_real_arrays_fail_when_checked_for_the_other_padding_side(
    real_tokenised: tuple[TokenisedData, TokenisationConfig],
) -> None:
    tokenised, tokenisation = real_tokenised
    other = "pre" if tokenisation.padding == "post" else "post"
    arrays = load_arrays(tokenised)

    report = validate_tokenised_arrays(tokenised, _real_tokenisation(other), ContractConfig())

    assert {(outcome.expectation, outcome.column) for outcome in report.failed} == {
        ("expect_column_values_to_be_between", "ids_on_wrong_side")
    }
    for outcome in report.failed:
        # Every padded row is wrong; rows filled with tokens (long reviews) fit either side.
        padded_rows = int((arrays[f"x_{outcome.split}"] == 0).any(axis=1).sum())
        assert 0 < outcome.unexpected_count == padded_rows < outcome.element_count
    assert len(report.failed) == len(SPLITS)


# --- hand-built arrays -----------------------------------------------------------------------------------


def _rows(rng: np.random.Generator, count: int, padding: str) -> np.ndarray:
    """``count`` rows of 3-11 in-vocabulary ids (never the OOV id), padded on ``padding``'s side."""
    ids = np.zeros((count, MAX_LENGTH), dtype=np.int32)
    for row, length in enumerate(rng.integers(3, MAX_LENGTH, size=count)):
        tokens = rng.integers(2, VOCAB_SIZE, size=length)
        if padding == "post":
            ids[row, :length] = tokens
        else:
            ids[row, MAX_LENGTH - length :] = tokens
    return ids


def _arrays(padding: str = "post", rows: int = ROWS, seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    arrays: Arrays = {}
    for split in SPLITS:
        arrays[f"x_{split}"] = _rows(rng, rows, padding)
        arrays[f"y_{split}"] = rng.integers(0, 2, size=rows).astype(np.int32)
    return arrays


def _tokenisation(padding: str = "post") -> TokenisationConfig:
    return TokenisationConfig(vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, padding=padding, truncation=padding)


def _tokenised(folder: Path, tokenisation: TokenisationConfig) -> TokenisedData:
    """A TokenisedData whose only real part is the folder the report goes to."""
    return TokenisedData(
        tokenised_dir=folder,
        vocabulary_path=folder / "vocabulary.txt",
        arrays_path=folder / "arrays.npz",
        dataset_digest="test",
        split_digests={split: "test" for split in SPLITS},
        array_digest="test",
        vocab_size=tokenisation.vocab_size,
        max_length=tokenisation.max_length,
        padding=tokenisation.padding,
        truncation=tokenisation.truncation,
        rows={split: ROWS for split in SPLITS},
        oov_rate={split: 0.0 for split in SPLITS},
    )


def _validate(folder: Path, arrays: Arrays, tokenisation: TokenisationConfig, contracts: ContractConfig | None = None):
    return validate_tokenised_arrays(_tokenised(folder, tokenisation), tokenisation, contracts or ContractConfig(), arrays=arrays)


def _violation(folder: Path, arrays: Arrays, tokenisation: TokenisationConfig, contracts: ContractConfig | None = None) -> str:
    report = _validate(folder, arrays, tokenisation, contracts)
    assert not report.success
    with pytest.raises(ContractViolation) as caught:
        raise_on_failure(report)
    message = str(caught.value)
    assert message.startswith(f"data contract {SUITE_NAME!r} failed; nothing was trained:")
    assert caught.value.report_path == str(report.results_path) and report.results_path.is_file()
    assert report.data_docs_index_path is not None and report.data_docs_index_path.is_file()
    return message


def _failure_lines(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith("  - ")]


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_hand_built_arrays_pass(tmp_path: Path, padding: str) -> None:
    report = _validate(tmp_path, _arrays(padding), _tokenisation(padding))
    assert report.success, report.failure_message()
    assert report.results_path.is_file() and report.data_docs_index_path is not None


def _narrow(arrays: Arrays) -> None:
    arrays["x_train"] = arrays["x_train"][:, : MAX_LENGTH - 2]


def _id_at_vocab_size(arrays: Arrays) -> None:
    arrays["x_validation"][3, 0] = VOCAB_SIZE


def _negative_id(arrays: Arrays) -> None:
    arrays["x_test"][[2, 6], 1] = -3


def _fewer_labels(arrays: Arrays) -> None:
    arrays["y_train"] = arrays["y_train"][:-1]


def _bad_labels(arrays: Arrays) -> None:
    arrays["y_test"][[0, 1]] = [2, -1]


def _mostly_oov(arrays: Arrays) -> None:
    x = arrays["x_train"]
    # Every second position becomes the OOV id, padding included: about half of each row's tokens.
    x[:, ::2] = np.where(x[:, ::2] != 0, 1, 0)


def _all_padding_rows(arrays: Arrays) -> None:
    arrays["x_validation"][[4, 9]] = 0


# id, change, expectation, split, column, the text the failure line ends with (kwargs onwards). GX stores the
# bounds of expect_column_values_to_be_between as floats, so the message shows 12.0 for max_length 12.
ROWS_TEXT = f"{ROWS} of {ROWS} rows fail (100.00%)"
BROKEN_CASES = [
    (
        "row-narrower-than-max-length",
        _narrow,
        "expect_column_values_to_be_between",
        "train",
        "row_length",
        f"({{'min_value': {MAX_LENGTH}.0, 'max_value': {MAX_LENGTH}.0}}): {ROWS_TEXT}; e.g. [10, 10, 10, 10, 10]",
    ),
    (
        "id-equal-to-vocab-size",
        _id_at_vocab_size,
        "expect_column_values_to_be_between",
        "validation",
        "max_id",
        f"({{'max_value': {VOCAB_SIZE - 1}.0}}): 1 of {ROWS} rows fail (2.50%); e.g. [{VOCAB_SIZE}]",
    ),
    (
        "negative-id",
        _negative_id,
        "expect_column_values_to_be_between",
        "test",
        "min_id",
        f"({{'min_value': 0.0}}): 2 of {ROWS} rows fail (5.00%); e.g. [-3, -3]",
    ),
    (
        "fewer-labels-than-rows",
        _fewer_labels,
        "expect_table_row_count_to_equal",
        "train",
        None,
        f"({{'value': {ROWS - 1}}}); observed {ROWS}",
    ),
    (
        "labels-outside-0-1",
        _bad_labels,
        "expect_column_values_to_be_in_set",
        "test",
        "label",
        f"({{'value_set': [0, 1]}}): 2 of {ROWS} rows fail (5.00%); e.g. [2, -1]",
    ),
    (
        "all-padding-rows",
        _all_padding_rows,
        "expect_column_values_to_be_in_set",
        "validation",
        "all_padding",
        f"({{'mostly': 0.999, 'value_set': [False]}}): 2 of {ROWS} rows fail (5.00%); e.g. [True, True]",
    ),
]


@pytest.mark.parametrize(
    ("change", "expectation", "split", "column", "ending"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN_CASES],
)
def test_broken_arrays_fail_with_a_precise_message(
    tmp_path: Path,
    change: Callable[[Arrays], None],
    expectation: str,
    split: str,
    column: str | None,
    ending: str,
) -> None:
    arrays = _arrays()
    change(arrays)

    message = _violation(tmp_path, arrays, _tokenisation())

    column_text = f"column {column!r}: " if column else ""
    assert _failure_lines(message) == [f"  - split {split!r}, {column_text}{expectation}{ending}"]


@pytest.mark.parametrize(("built", "checked"), [("pre", "post"), ("post", "pre")])
def test_padding_on_the_wrong_side_fails(tmp_path: Path, built: str, checked: str) -> None:
    arrays = _arrays(built)

    message = _violation(tmp_path, arrays, _tokenisation(checked))

    lines = _failure_lines(message)
    assert len(lines) == len(SPLITS)
    for split, line in zip(SPLITS, lines):
        # Every hand-built row is shorter than MAX_LENGTH. Read as post-padded, a pre-padded row's tokens all
        # follow its first padding id; read as pre-padded, a post-padded row's padding all follows its tokens.
        x = arrays[f"x_{split}"]
        wrong = ((x != 0) if checked == "post" else (x == 0)).sum(axis=1)[:5].tolist()
        assert line == (
            f"  - split {split!r}, column 'ids_on_wrong_side': expect_column_values_to_be_between("
            f"{{'max_value': 0.0}}): {ROWS_TEXT}; e.g. {wrong}"
        )


def test_oov_rate_above_the_bound_fails(tmp_path: Path) -> None:
    arrays = _arrays()
    _mostly_oov(arrays)
    expected = summarise_padded_rows(arrays["x_train"], arrays["y_train"], "post")["oov_fraction"].mean()
    assert expected > 0.4

    message = _violation(tmp_path, arrays, _tokenisation())

    [line] = _failure_lines(message)
    assert line.startswith(
        "  - split 'train', column 'oov_fraction': expect_column_mean_to_be_between({'max_value': 0.1}); observed "
    )
    assert float(re.search(r"observed ([0-9.]+)$", line).group(1)) == pytest.approx(expected)


def test_oov_and_all_padding_bounds_come_from_contract_config(tmp_path: Path) -> None:
    arrays = _arrays()
    _mostly_oov(arrays)
    _all_padding_rows(arrays)
    lenient = ContractConfig(max_oov_rate=0.9, max_all_padding_rows=0.1)

    assert _validate(tmp_path, arrays, _tokenisation(), lenient).success


def test_examples_in_message_limits_the_examples(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["y_validation"][:4] = 7

    message = _violation(tmp_path, arrays, _tokenisation(), ContractConfig(examples_in_message=2))

    [line] = _failure_lines(message)
    assert line.endswith(f": 4 of {ROWS} rows fail (10.00%); e.g. [7, 7]")


def test_few_all_padding_rows_within_the_bound_pass(tmp_path: Path) -> None:
    # 1 all-padding row in 2,000 (0.05%) is within the default 0.1%.
    arrays = _arrays(rows=2_000)
    arrays["x_test"][17] = 0

    report = _validate(tmp_path, arrays, _tokenisation())

    assert report.success, report.failure_message()


# --- summarise_padded_rows -------------------------------------------------------------------------------

HAND_MADE = np.array(
    [
        [5, 1, 0, 0],  # post-padded, one of two tokens OOV
        [0, 0, 7, 8],  # pre-padded
        [0, 0, 0, 0],  # padding only
        [2, 3, 4, 9],  # full row: right for either side
        [0, 7, 0, 3],  # padding on both sides of tokens
    ],
    dtype=np.int32,
)


@pytest.mark.parametrize(
    ("padding", "wrong_side"),
    [
        # post: everything after the first padding id must be padding.
        ("post", [0, 2, 0, 0, 2]),
        # pre: everything after the first token must be a token.
        ("pre", [2, 0, 0, 0, 1]),
    ],
)
def test_summarise_padded_rows(padding: str, wrong_side: list[int]) -> None:
    summary = summarise_padded_rows(HAND_MADE, np.array([1, 0, 1, 0, 1]), padding)

    expected = pd.DataFrame(
        {
            "row_length": np.full(5, 4, dtype=np.int64),
            "min_id": np.array([0, 0, 0, 2, 0], dtype=np.int32),
            "max_id": np.array([5, 8, 0, 9, 7], dtype=np.int32),
            "ids_on_wrong_side": np.array(wrong_side),
            "oov_fraction": [0.5, 0.0, np.nan, 0.0, 0.0],
            "all_padding": [False, False, True, False, False],
            "label": [1, 0, 1, 0, 1],
        }
    )
    assert list(summary.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(summary, expected, check_dtype=False)
    assert summary["row_length"].dtype == np.int64 and summary["all_padding"].dtype == bool


def test_summarise_padded_rows_drops_labels_that_do_not_line_up() -> None:
    summary = summarise_padded_rows(HAND_MADE, np.array([1, 0, 1]), "post")
    # The row-count expectation reports the mismatch; the label column must not pretend to hold labels.
    assert len(summary) == 5 and summary["label"].isna().all()


# --- the suite itself --------------------------------------------------------------------------------------


def _kwargs(tokenisation: TokenisationConfig, contracts: ContractConfig | None = None, label_count: int = 100) -> dict:
    suite = build_tokenised_reviews_suite(tokenisation, contracts or ContractConfig(), "train", label_count)
    assert suite.name == f"{SUITE_NAME}.train"
    return {
        (expectation.expectation_type, expectation.configuration.kwargs.get("column")): dict(expectation.configuration.kwargs)
        for expectation in suite.expectations
    }


def test_every_tokenised_expectation_has_a_failing_case() -> None:
    covered = {(case[2], case[4]) for case in BROKEN_CASES} | {
        ("expect_column_values_to_be_between", "ids_on_wrong_side"),  # test_padding_on_the_wrong_side_fails
        ("expect_column_mean_to_be_between", "oov_fraction"),  # test_oov_rate_above_the_bound_fails
    }
    for split in SPLITS:
        suite = build_tokenised_reviews_suite(_tokenisation(), ContractConfig(), split, ROWS)
        assert {(e.expectation_type, e.configuration.kwargs.get("column")) for e in suite.expectations} == covered
        assert len(suite.expectations) == len(covered)


def test_tokenised_bounds_come_from_config() -> None:
    small = _kwargs(TokenisationConfig(vocab_size=1_000, max_length=80))
    large = _kwargs(TokenisationConfig(vocab_size=20_000, max_length=400))
    between = "expect_column_values_to_be_between"

    assert (small[(between, "row_length")]["min_value"], small[(between, "row_length")]["max_value"]) == (80, 80)
    assert (large[(between, "row_length")]["min_value"], large[(between, "row_length")]["max_value"]) == (400, 400)
    assert small[(between, "max_id")]["max_value"] == 999
    assert large[(between, "max_id")]["max_value"] == 19_999
    assert small[(between, "min_id")]["min_value"] == large[(between, "min_id")]["min_value"] == 0

    contracts = ContractConfig(max_oov_rate=0.15, max_all_padding_rows=0.02)
    custom = _kwargs(TokenisationConfig(), contracts, label_count=1234)
    assert custom[("expect_column_mean_to_be_between", "oov_fraction")]["max_value"] == 0.15
    assert custom[("expect_column_values_to_be_in_set", "all_padding")]["mostly"] == pytest.approx(0.98)
    assert custom[("expect_table_row_count_to_equal", None)]["value"] == 1234


def test_changed_max_length_and_vocab_size_change_the_verdict(tmp_path: Path) -> None:
    arrays = _arrays()
    # Arrays of 12 ids over a 50-word vocabulary break a contract for 16 ids over 40 words.
    stricter = TokenisationConfig(vocab_size=40, max_length=16)

    report = _validate(tmp_path, arrays, stricter)

    failed = {(outcome.split, outcome.column) for outcome in report.failed}
    assert {(split, "row_length") for split in SPLITS} <= failed
    assert {column for _, column in failed} <= {"row_length", "max_id"}
    assert any(column == "max_id" for _, column in failed)
