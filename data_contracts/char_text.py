"""Contract for the character text of the language models, checked on train and validation before encoding.

The validated frame has one row per character of the split: ``char``; ``undecodable`` (``"0xNN"`` where the
split file holds a byte that is not UTF-8, else null); and on the validation split ``unseen_char`` (the
character where it never occurs in the training text, else null), which the runner derives before validation.
"""

from __future__ import annotations

import great_expectations as gx

from seqflow.config import CharContractConfig

SUITE_NAME = "char_text"


def build_char_text_suite(contracts: CharContractConfig, split: str) -> gx.ExpectationSuite:
    """The character-text expectations for one split; vocabulary on train, unseen characters on validation."""
    expectations = [
        # Guards against an empty file or a split too short to fill one training window.
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=contracts.min_chars),
        # Guards against bytes that are not UTF-8 (a Latin-1 or GBK file, a binary file): they would become
        # characters the model learns and generates as garbage.
        gx.expectations.ExpectColumnValuesToBeNull(column="undecodable"),
    ]
    if split == "train":
        # Guards against a vocabulary too large to learn from this text (a binary or wrongly decoded file, or
        # a corpus needing a word/subword model); also bounds the output layer's size.
        expectations.append(
            gx.expectations.ExpectColumnUniqueValueCountToBeBetween(column="char", min_value=2, max_value=contracts.max_vocab_size)
        )
    if split == "validation":
        # Guards against validation text in another script or alphabet than training: characters the model
        # never saw have near-zero probability and would dominate validation perplexity.
        expectations.append(
            gx.expectations.ExpectColumnValuesToBeNull(column="unseen_char", mostly=1.0 - contracts.max_unseen_share)
        )
    return gx.ExpectationSuite(name=f"{SUITE_NAME}.{split}", expectations=expectations)
