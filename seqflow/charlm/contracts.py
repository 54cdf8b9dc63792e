"""The character-text contract (``data_contracts/char_text.py``) run by :mod:`seqflow.core.contracts`' runner."""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from seqflow.charlm.text import CHAR_SPLITS, CharSplitFiles, read_char_split
from seqflow.charlm.config import CharContractConfig
from seqflow.core.contracts import ContractReport, run_contract

# Lone surrogates U+DC80..U+DCFF: how ``surrogateescape`` decoding marks each byte that is not UTF-8.
_ESCAPED_BYTE_FIRST, _ESCAPED_BYTE_LAST = 0xDC80, 0xDCFF
# Mojibake: UTF-8 read as Latin-1 or cp1252. A multi-byte UTF-8 character's lead byte (0xC2-0xF4) shows as one of
# these letters, and its continuation bytes (0x80-0xBF) as Latin-1 controls/symbols or cp1252's punctuation.
_MOJIBAKE_LEADS = frozenset(chr(code) for code in range(0xC2, 0xF5))
_MOJIBAKE_CONTINUATIONS = frozenset(
    [chr(code) for code in range(0x80, 0xC0)] + list("€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ")
)
# A lossy decoding (errors="replace") leaves this character where each undecodable byte was.
_REPLACEMENT = "\ufffd"
# What to change, per failing column (the runner's lines say what failed).
_HINTS = {
    "undecodable": "the file is not UTF-8: convert it (e.g. iconv -f GBK -t UTF-8 in.txt > out.txt) and run again",
    "mojibake": (
        "the text was decoded with the wrong encoding (UTF-8 read as Latin-1/cp1252, or replaced bytes): convert the "
        "original bytes to UTF-8 once, or accept it with --set contracts.max_mojibake_share=..."
    ),
    "foreign_script": (
        "validation text is written in a script the training text does not use: train on one language per corpus "
        "(a smaller data.block_chars mixes the text more evenly), or accept it with "
        "--set contracts.max_foreign_script_share=..."
    ),
    "unseen_char": (
        "validation uses many characters training never does (e.g. traditional vs simplified Chinese): use one "
        "variety or a longer text, or accept it with --set contracts.max_unseen_share=..."
    ),
    "char": "the text has more distinct characters than the bound: check its encoding, or --set contracts.max_vocab_size=...",
    None: "use a longer text, a smaller data.validation_fraction, or --set contracts.min_chars=...",
}


@lru_cache(maxsize=None)
def script_of(char: str) -> str | None:
    """The script a letter is written in (the first word of its Unicode name: LATIN, CJK, GREEK, CYRILLIC,
    HANGUL, HIRAGANA, ARABIC, ...; full- and half-width forms count as their script); None for anything that is
    not a letter (digits, punctuation, spaces, symbols are shared by every script)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    words = unicodedata.name(char, "").split()
    if words and words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1:
        words = words[1:]
    return words[0] if words else None


def _mojibake(text: str) -> np.ndarray:
    """Per character: True where it is U+FFFD or the first of a lead/continuation pair of mis-decoded UTF-8."""
    chars = list(text)
    flags = np.fromiter((char == _REPLACEMENT for char in chars), dtype=bool, count=len(chars))
    for index, (char, following) in enumerate(zip(chars, chars[1:])):
        if char in _MOJIBAKE_LEADS and following in _MOJIBAKE_CONTINUATIONS:
            flags[index] = True
    return flags


def char_frame(text: str, train_chars: set[str] | None = None, train_scripts: set[str] | None = None) -> pd.DataFrame:
    """One row per character: ``char``, ``undecodable``, ``mojibake`` and, given the training characters and
    scripts, ``unseen_char`` and ``foreign_script``."""
    chars = np.array(list(text), dtype=object)
    codes = np.fromiter((ord(c) for c in text), dtype=np.int64, count=len(text))
    escaped = (codes >= _ESCAPED_BYTE_FIRST) & (codes <= _ESCAPED_BYTE_LAST)
    undecodable = np.full(len(text), None, dtype=object)
    undecodable[escaped] = [f"0x{code - 0xDC00:02x}" for code in codes[escaped]]
    mojibake = np.full(len(text), None, dtype=object)
    flagged = np.flatnonzero(_mojibake(text))
    mojibake[flagged] = [text[index : index + 2] for index in flagged]
    # The escaped bytes are reported by ``undecodable``; in ``char`` they read as U+FFFD, because a lone
    # surrogate cannot be written into the UTF-8 results and Data Docs.
    chars[escaped] = "\ufffd"
    frame = pd.DataFrame({"char": chars, "undecodable": undecodable, "mojibake": mojibake})
    if train_chars is not None:
        unseen = ~frame["char"].isin(train_chars).to_numpy()
        frame["unseen_char"] = np.where(unseen, chars, None)
    if train_scripts is not None:
        scripts = frame["char"].map(script_of).to_numpy()
        foreign = np.array([script is not None and script not in train_scripts for script in scripts], dtype=bool)
        foreign_script = np.full(len(text), None, dtype=object)
        foreign_script[foreign] = [f"{chars[i]} ({scripts[i]})" for i in np.flatnonzero(foreign)]
        frame["foreign_script"] = foreign_script
    return frame


@dataclass(frozen=True)
class CharContractReport(ContractReport):
    """The character-text contract's report; its failure message ends with what to change for each failure."""

    def failure_message(self) -> str:
        columns = dict.fromkeys(outcome.column for outcome in self.failed)
        hints = [f"  to fix: {_HINTS[column]}" for column in columns if column in _HINTS]
        return "\n".join([super().failure_message(), *hints])


def validate_char_splits(split_files: CharSplitFiles, contracts: CharContractConfig) -> CharContractReport:
    """Run the character-text contract on the train and validation text of ``split_files``."""
    from seqflow.data_contracts.char_text import SUITE_NAME, build_char_text_suite

    texts = {split: read_char_split(split_files, split) for split in CHAR_SPLITS}
    train_chars = set(texts["train"])
    train_scripts = {script for char in train_chars if (script := script_of(char)) is not None}
    frames = {
        "train": char_frame(texts["train"]),
        "validation": char_frame(texts["validation"], train_chars, train_scripts),
    }
    report = run_contract(
        SUITE_NAME,
        frames,
        {split: build_char_text_suite(contracts, split) for split in CHAR_SPLITS},
        split_files.dataset_dir / "contracts" / SUITE_NAME,
        contracts.examples_in_message,
    )
    return CharContractReport(**{f.name: getattr(report, f.name) for f in dataclasses.fields(report)})
