"""Contract for padded id arrays, checked on every split after tokenisation.

The runner summarises each padded row into one line of the validated frame, because an expectation per id
column would mean ``max_length`` columns: ``row_length``, ``min_id``, ``max_id``, ``ids_on_wrong_side``
(padding ids on the side that should hold tokens, or tokens where padding belongs), ``oov_fraction`` (share of
the row's non-padding ids that are the OOV id), ``all_padding`` and ``label``.
"""

from __future__ import annotations

import great_expectations as gx

from seqflow.sentiment.config import ContractConfig, TokenisationConfig

SUITE_NAME = "tokenised_reviews"


def build_tokenised_reviews_suite(
    tokenisation: TokenisationConfig, contracts: ContractConfig, split: str, label_count: int
) -> gx.ExpectationSuite:
    """Bounds come from the same TokenisationConfig that built the vectoriser."""
    expectations = [
        # Guards against features and labels drifting apart (a dropped or duplicated row misaligns every label).
        gx.expectations.ExpectTableRowCountToEqual(value=label_count),
        # Guards against ragged or wrongly padded rows: the model's input shape is (None, max_length).
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="row_length", min_value=tokenisation.max_length, max_value=tokenisation.max_length
        ),
        # Guards against negative ids, which Embedding lookups reject or wrap.
        gx.expectations.ExpectColumnValuesToBeBetween(column="min_id", min_value=0),
        # Guards against ids beyond the embedding table (a vocabulary from another run or a larger vocab_size).
        gx.expectations.ExpectColumnValuesToBeBetween(column="max_id", max_value=tokenisation.vocab_size - 1),
        # Guards against padding on the wrong side: masks and cuDNN LSTMs assume the configured side, and the
        # seeds' SimpleRNN read its final state after hundreds of padding steps.
        gx.expectations.ExpectColumnValuesToBeBetween(column="ids_on_wrong_side", max_value=0),
        # Guards against a vocabulary too small or adapted on other text: the model would mostly see [UNK].
        gx.expectations.ExpectColumnMeanToBeBetween(column="oov_fraction", max_value=contracts.max_oov_rate),
        # Guards against rows with no in-vocabulary token at all, which carry no signal but still count as examples.
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="all_padding", value_set=[False], mostly=1.0 - contracts.max_all_padding_rows
        ),
        # Guards against labels corrupted between the raw contract and the arrays.
        gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
    ]
    return gx.ExpectationSuite(name=f"{SUITE_NAME}.{split}", expectations=expectations)
