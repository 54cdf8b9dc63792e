"""The character-text contract (``data_contracts/char_text.py``) run by :mod:`seqflow.core.contracts`' runner."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqflow.charlm.text import CHAR_SPLITS, CharSplitFiles, read_char_split
from seqflow.config import CharContractConfig
from seqflow.core.contracts import ContractReport, run_contract

# Lone surrogates U+DC80..U+DCFF: how ``surrogateescape`` decoding marks each byte that is not UTF-8.
_ESCAPED_BYTE_FIRST, _ESCAPED_BYTE_LAST = 0xDC80, 0xDCFF


def char_frame(text: str, train_chars: set[str] | None = None) -> pd.DataFrame:
    """One row per character: ``char``, ``undecodable`` and, given the training characters, ``unseen_char``."""
    chars = np.array(list(text), dtype=object)
    codes = np.fromiter((ord(c) for c in text), dtype=np.int64, count=len(text))
    escaped = (codes >= _ESCAPED_BYTE_FIRST) & (codes <= _ESCAPED_BYTE_LAST)
    undecodable = np.full(len(text), None, dtype=object)
    undecodable[escaped] = [f"0x{code - 0xDC00:02x}" for code in codes[escaped]]
    # The escaped bytes are reported by ``undecodable``; in ``char`` they read as U+FFFD, because a lone
    # surrogate cannot be written into the UTF-8 results and Data Docs.
    chars[escaped] = "\ufffd"
    frame = pd.DataFrame({"char": chars, "undecodable": undecodable})
    if train_chars is not None:
        unseen = ~frame["char"].isin(train_chars).to_numpy()
        frame["unseen_char"] = np.where(unseen, chars, None)
    return frame


def validate_char_splits(split_files: CharSplitFiles, contracts: CharContractConfig) -> ContractReport:
    """Run the character-text contract on the train and validation text of ``split_files``."""
    from seqflow.data_contracts.char_text import SUITE_NAME, build_char_text_suite

    texts = {split: read_char_split(split_files, split) for split in CHAR_SPLITS}
    frames = {
        "train": char_frame(texts["train"]),
        "validation": char_frame(texts["validation"], set(texts["train"])),
    }
    return run_contract(
        SUITE_NAME,
        frames,
        {split: build_char_text_suite(contracts, split) for split in CHAR_SPLITS},
        split_files.dataset_dir / "contracts" / SUITE_NAME,
        contracts.examples_in_message,
    )
