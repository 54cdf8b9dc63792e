"""The character-text contract on real text, and on broken text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqflow.charlm.contracts import validate_char_splits
from seqflow.charlm.text import write_char_splits
from seqflow.charlm.sources import CharSource, load_char_source
from seqflow.charlm.config import CharContractConfig, CharDataConfig
from seqflow.core.contracts import raise_on_failure
from seqflow.core.errors import ContractViolation

DATA = CharDataConfig(source="embedded:hamlet", max_chars=60_000, block_chars=5_000)


@pytest.fixture
def hamlet_splits(tmp_path: Path):
    return write_char_splits(load_char_source(DATA), DATA, 42, tmp_path)


def test_real_text_passes(hamlet_splits):
    report = raise_on_failure(validate_char_splits(hamlet_splits, CharContractConfig()))
    assert report.success and report.splits == ("train", "validation")
    assert report.summary_line() == "char_text: 9 expectations over 2 splits passed"
    assert report.results_path.is_file() and report.data_docs_index_path is not None


def test_vocabulary_bound_names_the_count(hamlet_splits):
    report = validate_char_splits(hamlet_splits, CharContractConfig(max_vocab_size=20))
    with pytest.raises(ContractViolation) as error:
        raise_on_failure(report)
    message = str(error.value)
    assert "split 'train', column 'char': expect_column_unique_value_count_to_be_between" in message
    assert "'max_value': 20" in message and "observed 6" in message  # 60-some distinct characters


def test_unseen_validation_characters_are_counted_and_shown(tmp_path: Path):
    # Validation blocks in Greek, training in English: every validation character is unseen.
    text = ("To be, or not to be: that is the question. " * 30)[:1_000] * 4 + ("αβγδε ζηθ " * 100)[:1_000]
    config = CharDataConfig(block_chars=1_000, validation_fraction=0.2)
    split_files = write_char_splits(CharSource("test", text), config, 0, tmp_path)
    report = validate_char_splits(split_files, CharContractConfig(min_chars=100))
    if "α" not in split_files.validation_path.read_text(encoding="utf-8"):
        pytest.skip("the seeded draw kept the Greek block in training")  # pragma: no cover - seed 0 draws it
    failed = {o.column: o for o in report.failed if o.split == "validation"}
    assert set(failed) == {"unseen_char", "foreign_script"} and len(report.failed) == 2
    # 800 Greek letters; its spaces also occur in training.
    outcome = failed["unseen_char"]
    assert (outcome.unexpected_count, outcome.element_count) == (800, 1_000) and "α" in outcome.examples
    assert failed["foreign_script"].unexpected_count == 800 and "α (GREEK)" in failed["foreign_script"].examples
    message = report.failure_message()
    assert "to fix: validation text is written in a script the training text does not use" in message
    assert "--set contracts.max_foreign_script_share=" in message


def test_undecodable_bytes_and_short_text_fail(tmp_path: Path):
    config = CharDataConfig(block_chars=500)
    split_files = write_char_splits(CharSource("test", "abcdefghij " * 200), config, 1, tmp_path)
    # A split file corrupted on disk after it was written: bytes that are not UTF-8.
    corrupted = split_files.train_path.read_bytes()[:300] + b"\xff\xfe" + split_files.train_path.read_bytes()[300:]
    split_files.train_path.write_bytes(corrupted)
    report = validate_char_splits(split_files, CharContractConfig(min_chars=5_000))
    described = "\n".join(outcome.describe() for outcome in report.failed)
    assert "column 'undecodable': expect_column_values_to_be_null" in described
    assert "2 of" in described and "0xff" in described and "0xfe" in described
    assert "expect_table_row_count_to_be_between({'min_value': 5000})" in described


def _chinese_text(chars: int, seed: int) -> str:
    """Lines drawn from a Zipf distribution over 3,000 CJK characters: a large alphabet with a long tail."""
    rng = np.random.default_rng(seed)
    alphabet = np.array([chr(0x4E00 + i) for i in range(3_000)])
    weights = 1.0 / np.arange(1, 3_001)
    drawn = rng.choice(alphabet, size=chars, p=weights / weights.sum())
    return "".join(char + ("，" if i % 7 == 6 else "") + ("\n" if i % 20 == 19 else "") for i, char in enumerate(drawn))


def test_rare_characters_of_a_large_alphabet_pass(tmp_path: Path):
    # Validation has a few percent of characters training never shows (the long tail); same script, so it passes,
    # where the former 0.5% bound on unseen characters refused every such corpus.
    split_files = write_char_splits(CharSource("test", _chinese_text(30_000, 0)), CharDataConfig(block_chars=2_000), 0, tmp_path)
    report = validate_char_splits(split_files, CharContractConfig())
    assert report.success, report.failure_message()
    validation = split_files.validation_path.read_text(encoding="utf-8")
    train = set(split_files.train_path.read_text(encoding="utf-8"))
    assert 0.005 < sum(char not in train for char in validation) / len(validation) < 0.1


def test_validation_in_another_script_is_refused_with_what_to_change(tmp_path: Path):
    # Chinese training text, validation blocks in Korean (Hangul): another alphabet altogether.
    chinese = _chinese_text(8_000, 1)[:8_000]
    korean = ("가나다라마바사아자차카타파하 " * 200)[:2_000]
    split_files = write_char_splits(CharSource("test", chinese + korean), CharDataConfig(block_chars=2_000, validation_fraction=0.2), 0, tmp_path)
    if "가" not in split_files.validation_path.read_text(encoding="utf-8"):
        pytest.skip("the seeded draw kept the Korean block in training")  # pragma: no cover - seed 0 draws it
    with pytest.raises(ContractViolation) as error:
        raise_on_failure(validate_char_splits(split_files, CharContractConfig(min_chars=100)))
    message = str(error.value)
    assert "column 'foreign_script'" in message and "(HANGUL)" in message
    assert "to fix: validation text is written in a script" in message


def test_mojibake_is_refused_in_either_split(tmp_path: Path):
    # UTF-8 Chinese read as Latin-1 and saved again: every character becomes three Latin-1 ones ("ä¸\x8d").
    garbled = _chinese_text(6_000, 2).encode("utf-8").decode("latin-1")
    split_files = write_char_splits(CharSource("test", garbled), CharDataConfig(block_chars=2_000), 0, tmp_path)
    report = validate_char_splits(split_files, CharContractConfig(max_vocab_size=5_000))
    failed = {(o.split, o.column) for o in report.failed}
    assert {("train", "mojibake"), ("validation", "mojibake")} <= failed
    assert "to fix: the text was decoded with the wrong encoding" in report.failure_message()
    # The same text decoded correctly passes that expectation.
    clean = write_char_splits(CharSource("test", _chinese_text(6_000, 2)), CharDataConfig(block_chars=2_000), 0, tmp_path / "clean")
    assert "mojibake" not in {o.column for o in validate_char_splits(clean, CharContractConfig()).failed}
