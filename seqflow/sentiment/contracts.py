"""The review pipeline's two contracts: the raw splits (``data_contracts/raw_reviews.py``) and the tokenised
arrays (``data_contracts/tokenised_reviews.py``), run through :mod:`seqflow.core.contracts`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqflow.sentiment.config import ContractConfig, TokenisationConfig
from seqflow.core.contracts import ContractReport, run_contract
from seqflow.sentiment.datasets import SPLITS, SplitFiles, read_split
from seqflow.sentiment.tokenise import TokenisedData, load_arrays


def _numeric_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels stored as text (a source mixing numbers and words) read as numbers wherever they are numbers.

    Sources keep a label column that mixes ``1`` and ``'pos'`` as text, so every label arrives as a string;
    checked as stored, every row would fail the label set and the examples would show ``'1'`` and ``'0'``
    instead of the culprit. Tokenisation casts ``'1'`` to 1 anyway, so only the non-numeric values are wrong.
    """
    labels = frame["label"]
    if not (labels.dtype == object or pd.api.types.is_string_dtype(labels.dtype)):
        return frame
    labels = labels.astype(object)
    numeric = pd.to_numeric(labels, errors="coerce")
    frame = frame.copy()
    frame["label"] = labels.where(numeric.isna(), numeric)
    return frame


def raw_contract_frames(split_files: SplitFiles) -> dict[str, pd.DataFrame]:
    """The splits as validated by the raw contract; the test frame gains ``also_in_train``."""
    frames = {split: _numeric_labels(read_split(split_files, split)) for split in SPLITS}
    train_texts = set(frames["train"]["text"].dropna())
    test = frames["test"].copy()
    test["also_in_train"] = test["text"].isin(train_texts)
    frames["test"] = test
    return frames


def validate_raw_splits(split_files: SplitFiles, contracts: ContractConfig) -> ContractReport:
    """Run the raw-review contract on every split of ``split_files``."""
    from seqflow.data_contracts.raw_reviews import SUITE_NAME, build_raw_reviews_suite

    return run_contract(
        SUITE_NAME,
        raw_contract_frames(split_files),
        {split: build_raw_reviews_suite(contracts, split) for split in SPLITS},
        split_files.dataset_dir / "contracts" / SUITE_NAME,
        contracts.examples_in_message,
    )


def summarise_padded_rows(ids: np.ndarray, labels: np.ndarray, padding: str) -> pd.DataFrame:
    """One row per padded sequence with the columns the tokenised contract checks."""
    from seqflow.models.text import OOV_ID, PADDING_ID

    ids = np.asarray(ids)
    if ids.ndim != 2:
        ids = ids.reshape(len(ids), -1)
    is_pad = ids == PADDING_ID
    real = ~is_pad
    if padding == "post":
        # Everything from the first padding id on must be padding.
        after_first_pad = np.cumsum(is_pad, axis=1) > 0
        wrong_side = (real & after_first_pad).sum(axis=1)
    else:
        # Everything from the first real id on must be real.
        after_first_real = np.cumsum(real, axis=1) > 0
        wrong_side = (is_pad & after_first_real).sum(axis=1)
    real_counts = real.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        oov_fraction = np.where(real_counts > 0, (ids == OOV_ID).sum(axis=1) / np.maximum(real_counts, 1), np.nan)
    summary = pd.DataFrame(
        {
            "row_length": np.full(len(ids), ids.shape[1], dtype=np.int64),
            "min_id": ids.min(axis=1) if ids.shape[1] else np.zeros(len(ids), np.int64),
            "max_id": ids.max(axis=1) if ids.shape[1] else np.zeros(len(ids), np.int64),
            "ids_on_wrong_side": wrong_side,
            "oov_fraction": oov_fraction,
            "all_padding": real_counts == 0,
        }
    )
    # Labels join only when counts agree; otherwise the row-count expectation reports the mismatch.
    summary["label"] = np.asarray(labels) if len(labels) == len(ids) else np.nan
    return summary


def validate_tokenised_arrays(
    tokenised: TokenisedData,
    tokenisation: TokenisationConfig,
    contracts: ContractConfig,
    arrays: dict[str, np.ndarray] | None = None,
) -> ContractReport:
    """Run the tokenised contract on the padded arrays (loaded from ``tokenised`` unless given)."""
    from seqflow.data_contracts.tokenised_reviews import SUITE_NAME, build_tokenised_reviews_suite

    arrays = load_arrays(tokenised) if arrays is None else arrays
    frames = {
        split: summarise_padded_rows(arrays[f"x_{split}"], arrays[f"y_{split}"], tokenisation.padding)
        for split in SPLITS
    }
    suites = {
        split: build_tokenised_reviews_suite(tokenisation, contracts, split, len(arrays[f"y_{split}"]))
        for split in SPLITS
    }
    return run_contract(
        SUITE_NAME, frames, suites, tokenised.tokenised_dir / "contracts" / SUITE_NAME, contracts.examples_in_message
    )
