"""Text sources, the block split and encoding, on real text and on broken files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from seqflow.charlm.text import (
    UNKNOWN_ID,
    build_vocabulary,
    encode,
    encode_char_splits,
    load_char_ids,
    load_char_vocabulary,
    read_char_split,
    split_blocks,
    write_char_splits,
)
from seqflow.charlm.sources import CharSource, embedded_play_paths, load_char_source, play_to_text
from seqflow.charlm.config import CharDataConfig
from seqflow.core.errors import DataSourceError


def test_embedded_plays_become_speaker_and_lines():
    text = load_char_source(CharDataConfig(source="embedded:romeo-and-juliet")).text
    speeches = text.strip("\n").split("\n\n")
    assert len(speeches) > 500
    for speech in speeches:
        speaker, _, lines = speech.partition("\n")
        # Every speech is "SPEAKER:" on its own line, then at least one line of dialogue.
        assert speaker.endswith(":") and lines.strip(), speech[:80]
    assert "ROMEO:\n" in text and "JULIET:\n" in text
    assert "But, soft! what light through yonder window breaks?" in text
    # No markdown or stage-direction markup is left.
    assert not re.search(r"[_*#\\]|\[", text)
    assert "Enter ROMEO" not in text


def test_play_to_text_drops_headings_directions_and_escapes():
    markdown = (
        "# A Play\n\n## ACT I\n\n### SCENE I. A street.\n\n_Enter SAMPSON and GREGORY, armed with swords and\n"
        "bucklers_\n\n**SAMPSON**  \nGregory, o' my word,  \n_\\[Aside]_ we'll not carry coals.  \n\n"
        "**GREGORY**  \n__\\[Awaking]_  \nNo\\--for then _Exit_\n\n_Exeunt_\n"
    )
    assert play_to_text(markdown) == (
        "SAMPSON:\nGregory, o' my word,\nwe'll not carry coals.\n\nGREGORY:\nNo--for then\n"
    )


def test_embedded_subset_and_max_chars_and_unknown_play():
    plays = embedded_play_paths()
    assert len(plays) == 38 and "hamlet" in plays
    capped = load_char_source(CharDataConfig(source="embedded:hamlet,macbeth", max_chars=5000))
    assert len(capped.text) == 5000
    with pytest.raises(DataSourceError, match="'no-such-play'.*do not exist"):
        load_char_source(CharDataConfig(source="embedded:no-such-play"))


def test_text_file_in_chinese(chinese_text_path: Path):
    source = load_char_source(CharDataConfig(source=f"text:{chinese_text_path}"))
    assert source.text.startswith("床前明月光")
    splits = split_blocks(source.text, CharDataConfig(block_chars=400), seed=1)
    assert "".join(splits.values()) != "" and len(splits["validation"]) >= 400


def test_non_utf8_and_missing_files_name_the_problem(tmp_path: Path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("first line\ncafé au lait\n".encode("latin-1"))
    with pytest.raises(DataSourceError, match=r"latin1.txt' is not valid UTF-8 \(byte 14, line 2.*0xe9"):
        load_char_source(CharDataConfig(source=f"text:{latin1}"))
    with pytest.raises(DataSourceError, match="does not exist"):
        load_char_source(CharDataConfig(source=f"text:{tmp_path / 'missing.txt'}"))
    with pytest.raises(DataSourceError, match="needs a path"):
        load_char_source(CharDataConfig(source="text:"))
    with pytest.raises(DataSourceError, match="unknown text source"):
        load_char_source(CharDataConfig(source="csv:x.csv"))


def test_windows_line_endings_and_bom_are_normalised(tmp_path: Path):
    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeffA:\r\nline\r\n".encode("utf-8"))
    assert load_char_source(CharDataConfig(source=f"text:{path}")).text == "A:\nline\n"


def test_tfds_offline_fails_fast_with_a_clear_message(tmp_path: Path, monkeypatch):
    from seqflow.charlm import sources as char_sources

    # This machine has no internet; make the probe's answer explicit so the test means the same anywhere.
    monkeypatch.setattr(char_sources, "network_reaches", lambda host: False)
    started = time.perf_counter()
    with pytest.raises(DataSourceError, match=r"tiny_shakespeare is not prepared in .*\(no network\)"):
        load_char_source(CharDataConfig(source="tfds:tiny_shakespeare", tfds_data_dir=str(tmp_path)))
    assert time.perf_counter() - started < 30
    with pytest.raises(DataSourceError, match="not supported"):
        load_char_source(CharDataConfig(source="tfds:imdb_reviews"))


def test_block_split_is_seeded_contiguous_and_complete():
    text = "".join(f"{i:04d}" for i in range(2_500))  # 10,000 characters
    config = CharDataConfig(block_chars=1_000, validation_fraction=0.2)
    first, again, other = split_blocks(text, config, 7), split_blocks(text, config, 7), split_blocks(text, config, 8)
    assert first == again and first != other
    assert len(first["validation"]) == 2_000 and len(first["train"]) == 8_000
    # Validation is whole blocks of the text, in text order.
    blocks = [text[i : i + 1_000] for i in range(0, 10_000, 1_000)]
    held_out = [first["validation"][i : i + 1_000] for i in (0, 1_000)]
    assert all(block in blocks for block in held_out) and blocks.index(held_out[0]) < blocks.index(held_out[1])
    with pytest.raises(DataSourceError, match="fewer than two blocks"):
        split_blocks("short", config, 1)


def test_written_splits_and_ids_round_trip(tmp_path: Path, chinese_text_path: Path):
    source = load_char_source(CharDataConfig(source=f"text:{chinese_text_path}"))
    config = CharDataConfig(block_chars=400)
    split_files = write_char_splits(source, config, 3, tmp_path)
    assert read_char_split(split_files, "train") + read_char_split(split_files, "validation") != ""
    assert sum(split_files.chars.values()) == len(source.text)
    again = write_char_splits(source, config, 3, tmp_path)
    assert again.digest == split_files.digest and again.dataset_dir == split_files.dataset_dir
    encoded = encode_char_splits(split_files, tmp_path)
    vocabulary = load_char_vocabulary(encoded.vocabulary_path)
    assert vocabulary[UNKNOWN_ID] == "\ufffd" and "月" in vocabulary and "\n" in vocabulary
    train_ids = load_char_ids(encoded, "train")
    assert "".join(vocabulary[i] for i in train_ids) == read_char_split(split_files, "train")
    assert encoded.unseen_share == 0.0


def test_unseen_characters_encode_as_unknown():
    vocabulary = build_vocabulary("abca")
    assert vocabulary == ["\ufffd", "a", "b", "c"]
    assert encode("abz", vocabulary).tolist() == [1, 2, UNKNOWN_ID]
    assert encode("", vocabulary).dtype == np.int32


def test_char_source_record_is_plain():
    assert CharSource(spec="x", text="y").text == "y"
