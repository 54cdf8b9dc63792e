"""Contract for the character text of the language models, checked on train and validation before encoding.

The validated frame has one row per character of the split: ``char``; ``undecodable`` (``"0xNN"`` where the
split file holds a byte that is not UTF-8, else null); ``mojibake`` (the pair where the text looks like UTF-8
decoded as Latin-1/cp1252, or U+FFFD, else null); and on the validation split ``unseen_char`` (the character
where it never occurs in the training text, else null) and ``foreign_script`` (a letter written in a script no
training letter uses, else null), which the runner derives before validation.
"""

from __future__ import annotations

import great_expectations as gx

from seqflow.charlm.config import CharContractConfig

SUITE_NAME = "char_text"


def build_char_text_suite(contracts: CharContractConfig, split: str) -> gx.ExpectationSuite:
    """The character-text expectations for one split; vocabulary on train, unseen characters on validation."""
    expectations = [
        # Guards against an empty file or a split too short to fill one training window.
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=contracts.min_chars),
        # Guards against bytes that are not UTF-8 (a Latin-1 or GBK file, a binary file): they would become
        # characters the model learns and generates as garbage.
        gx.expectations.ExpectColumnValuesToBeNull(column="undecodable"),
        # Guards against a text that was decoded with the wrong encoding before it reached us (UTF-8 read as
        # Latin-1/cp1252 and saved again: "Ã©", "å¤§"; or bytes replaced by U+FFFD): it decodes fine but is not
        # the language it claims, and the model would learn the garbling.
        gx.expectations.ExpectColumnValuesToBeNull(column="mojibake", mostly=1.0 - contracts.max_mojibake_share),
    ]
    if split == "train":
        # Guards against a vocabulary too large to learn from this text (a binary or wrongly decoded file, or
        # a corpus needing a word/subword model); also bounds the output layer's size.
        expectations.append(
            gx.expectations.ExpectColumnUniqueValueCountToBeBetween(column="char", min_value=2, max_value=contracts.max_vocab_size)
        )
    if split == "validation":
        # Guards against validation text in another language or alphabet than training (English plays validated
        # on Greek, Chinese lyrics on Korean): the score would measure the mismatch, not the model. Judged by
        # script, not by character, so the rare characters of a large alphabet (CJK) pass.
        expectations.append(
            gx.expectations.ExpectColumnValuesToBeNull(column="foreign_script", mostly=1.0 - contracts.max_foreign_script_share)
        )
        # Guards against another vocabulary in the same script (traditional vs simplified Chinese): unseen
        # characters are read as the unknown id, which is fine for the few a large alphabet always has, but a
        # validation text made largely of them scores only that id.
        expectations.append(
            gx.expectations.ExpectColumnValuesToBeNull(column="unseen_char", mostly=1.0 - contracts.max_unseen_share)
        )
    return gx.ExpectationSuite(name=f"{SUITE_NAME}.{split}", expectations=expectations)
