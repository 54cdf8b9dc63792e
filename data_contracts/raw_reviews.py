"""Contract for raw labelled reviews, checked on every split before tokenisation.

Columns of the validated frame: ``text``, ``label``, and on the test split ``also_in_train`` (whether the same
review text occurs in the training split), which the runner derives before validation.
"""

from __future__ import annotations

import great_expectations as gx

from seqflow.sentiment.config import ContractConfig

SUITE_NAME = "raw_reviews"


def build_raw_reviews_suite(contracts: ContractConfig, split: str) -> gx.ExpectationSuite:
    """The raw-review expectations for one split; the leakage check applies to the test split only."""
    expectations = [
        # Guards against an empty file or a filter that removed every row.
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        # Guards against missing reviews (NaN, empty CSV cells): the vectoriser would see the string "nan".
        gx.expectations.ExpectColumnValuesToNotBeNull(column="text"),
        # Guards against empty or whitespace-only reviews, which become all-padding rows with no signal.
        gx.expectations.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$"),
        # Guards against missing labels, which Keras would silently cast to 0 (negative).
        gx.expectations.ExpectColumnValuesToNotBeNull(column="label"),
        # Guards against labels outside binary sentiment (2, -1, star ratings, 'pos'): a sigmoid output cannot fit them.
        gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        # Guards against a skewed sample: accuracy is only comparable to the seeds' numbers on balanced data.
        gx.expectations.ExpectColumnMeanToBeBetween(
            column="label",
            min_value=0.5 - contracts.class_balance_band,
            max_value=0.5 + contracts.class_balance_band,
        ),
    ]
    if split == "test":
        # Guards against train/test leakage beyond IMDB's own ~120 cross-split duplicates: test accuracy would
        # then measure memorisation.
        expectations.append(
            gx.expectations.ExpectColumnValuesToBeInSet(
                column="also_in_train", value_set=[False], mostly=1.0 - contracts.max_train_test_overlap
            )
        )
    return gx.ExpectationSuite(name=f"{SUITE_NAME}.{split}", expectations=expectations)
