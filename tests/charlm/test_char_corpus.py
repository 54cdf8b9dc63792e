"""One corpus per registered model, the rare-character policy, the n-gram gate and the sized default profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqflow.charlm.baselines import BaselineScores
from seqflow.charlm.corpus import (
    champion_vocabulary_problem,
    charlm_model_name,
    charlm_model_name_for,
    ngram_gate,
)
from seqflow.charlm.sizing import resolve_auto_charlm_config, sized_settings
from seqflow.charlm.sources import CharSource
from seqflow.charlm.text import (
    UNKNOWN_ID,
    build_vocabulary,
    encode_char_splits,
    load_char_ids,
    load_char_vocabulary,
    resolve_min_char_count,
    write_char_splits,
)
from seqflow.charlm.config import CharDataConfig
from seqflow.core.errors import ConfigError

CJK = [chr(0x4E00 + i) for i in range(400)]


def test_model_name_is_derived_from_the_source_unless_named():
    assert charlm_model_name_for("text:/data/Jay Chou lyrics.txt") == "seqflow-charlm-jay-chou-lyrics"
    assert charlm_model_name_for("tfds:tiny_shakespeare") == "seqflow-charlm-tiny_shakespeare"
    assert charlm_model_name_for("embedded:hamlet,macbeth") == "seqflow-charlm-hamlet-macbeth"
    assert charlm_model_name_for("embedded") == "seqflow-charlm-embedded"
    # Stems with no ASCII letters still get distinct names.
    lyrics, poems = charlm_model_name_for("text:/data/周杰伦.txt"), charlm_model_name_for("text:/data/唐诗.txt")
    assert lyrics.startswith("seqflow-charlm-text-") and lyrics != poems
    # --model-name wins, then SEQFLOW_CHARLM_MODEL_NAME, then the derived name.
    assert charlm_model_name("mine", "from-env", "embedded") == "mine"
    assert charlm_model_name(None, "from-env", "embedded") == "from-env"
    assert charlm_model_name(None, None, "text:a/lyrics.txt") == "seqflow-charlm-lyrics"
    with pytest.raises(ConfigError, match="cannot name a registered model"):
        charlm_model_name("a/b@c", None, "embedded")


def test_rare_characters_fold_into_unknown_only_for_large_alphabets():
    english = "To be, or not to be: that is the question. $"
    assert resolve_min_char_count(english, None) == 1  # English vocabularies stay as they were ('$' kept)
    assert "$" in build_vocabulary(english, resolve_min_char_count(english, None))
    chinese = "".join(CJK) + "".join(CJK[:50]) * 3  # 400 distinct: 350 seen once, 50 seen four times
    assert resolve_min_char_count(chinese, None) == 2 and resolve_min_char_count(chinese, 5) == 5
    vocabulary = build_vocabulary(chinese, 2)
    assert vocabulary[UNKNOWN_ID] == "\ufffd" and len(vocabulary) == 1 + 50 and CJK[399] not in vocabulary


def test_encoding_a_large_alphabet_trains_the_unknown_id(tmp_path: Path):
    rng = np.random.default_rng(0)
    alphabet = [chr(0x4E00 + i) for i in range(2_000)]  # a long tail: many characters seen once
    weights = 1.0 / np.arange(1, len(alphabet) + 1)
    text = "".join(rng.choice(alphabet, size=20_000, p=weights / weights.sum()))
    split_files = write_char_splits(CharSource("t", text), CharDataConfig(block_chars=2_000), 0, tmp_path)
    encoded = encode_char_splits(split_files, tmp_path)
    train = load_char_ids(encoded, "train")
    assert encoded.min_char_count == 2 and encoded.encoded_dir.name.endswith("-min2")
    # The unknown id now occurs in training (the characters seen once), so the network learns its probability.
    assert 0 < (train == UNKNOWN_ID).mean() < 0.05
    assert len(load_char_vocabulary(encoded.vocabulary_path)) == encoded.vocab_size
    # An explicit threshold of 1 keeps every character and the folder of before.
    every = encode_char_splits(split_files, tmp_path, 1)
    assert every.min_char_count == 1 and (load_char_ids(every, "train") != UNKNOWN_ID).all()
    assert every.encoded_dir.name == split_files.digest[:16]


def test_a_champion_of_another_alphabet_is_not_compared():
    english = ["\ufffd", *sorted(set("ROMEO: what light through yonder window breaks"))]
    chinese_validation = "床前明月光，疑是地上霜。"
    problem = champion_vocabulary_problem(english, chinese_validation, own_unknown_share=0.0)
    assert problem is not None and "100.0% of this validation text is outside the champion's vocabulary" in problem
    # Same alphabet, a few characters the champion lacks, as many as the challenger's own vocabulary lacks: compared.
    assert champion_vocabulary_problem(english, "ROMEO: what light X", own_unknown_share=0.06) is None


def test_ngram_gate_refuses_a_network_that_does_not_beat_counting():
    baselines = BaselineScores(unigram_loss=np.log(488.0), ngram_loss=np.log(284.0), ngram_order=2)
    refusal = ngram_gate("3", 530.9, baselines)
    assert refusal is not None and not refusal.promote and refusal.refused_by == "require_beating_ngram"
    assert "validation perplexity 530.900 does not beat the 2-gram Kneser-Ney baseline 284.000" in refusal.reason
    assert "\n" not in refusal.reason and "(unigram 488.000)" in refusal.reason
    assert ngram_gate("3", 200.0, baselines) is None


def test_sized_settings_follow_the_corpus():
    lyrics, plays = sized_settings(63_282, 2_492), sized_settings(1_115_394, 65)
    assert (lyrics["training.embedding_dim"], plays["training.embedding_dim"]) == (128, 64)
    assert lyrics["training.rnn_units"] < plays["training.rnn_units"] == 512
    assert lyrics["training.dropout"] > plays["training.dropout"]
    assert lyrics["training.seq_length"] == 35 and lyrics["training.batch_size"] == 32
    assert lyrics["data.block_chars"] == 1_265 and plays["data.block_chars"] == 10_000
    for sized in (lyrics, plays):
        assert sized["training.max_training_minutes"] <= 20 and sized["training.early_stopping_patience"] >= 3
    assert lyrics["promotion.max_val_perplexity"] == 2_492.0
    # Interpolated with the n-gram at both sizes it was measured to pay at (BENCHMARKS.md); windows shifted every
    # epoch where that was measured (the large text).
    assert lyrics["training.ngram_interpolation"] and plays["training.ngram_interpolation"]
    assert plays["training.shift_windows"] and not lyrics["training.shift_windows"] and plays["training.dropout"] == 0.2
    assert "data.max_chars" not in plays and sized_settings(5_000_000, 80)["data.max_chars"] == 2_000_000


def test_auto_profile_is_sized_from_its_text_and_explicit_settings_win(tmp_path: Path):
    rng = np.random.default_rng(0)
    path = tmp_path / "lyrics.txt"
    path.write_text("".join(rng.choice(CJK, size=60_000)), encoding="utf-8")
    source = f"text:{path}"
    config = resolve_auto_charlm_config({"training.dropout": "0.4"}, {"data.source": source, "training.rnn_units": "99"})
    assert config.profile == "auto" and config.training.embedding_dim == 128 and config.training.seq_length == 35
    assert config.training.rnn_units == 99 and config.training.dropout == 0.4  # --set, then SEQFLOW_*, then sizing
    assert config.training.max_training_minutes == 18.0 and config.data.block_chars == 1_200


def test_tail_split_holds_out_the_end_of_the_text():
    from seqflow.charlm.text import split_blocks

    text = "".join(chr(ord("a") + i % 26) for i in range(1_000))
    splits = split_blocks(text, CharDataConfig(validation_split="tail", block_chars=10), seed=0)
    assert splits == {"train": text[:900], "validation": text[900:]}


def test_cli_refuses_a_bad_model_name_in_one_line_before_reading_the_text(tmp_path: Path, monkeypatch, capsys):
    from seqflow.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["charlm", "run", "--model-name", "lyrics/v2", "--source", f"text:{tmp_path / 'missing.txt'}"])
    err = capsys.readouterr().err
    assert code == 2 and "--model-name 'lyrics/v2' cannot name a registered model" in err
    assert "missing.txt" not in err and "Traceback" not in err and not (tmp_path / "mlflow.db").exists()
