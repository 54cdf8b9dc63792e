"""A character model on a Chinese text the test builds: it trains (beats the unigram baseline on validation)
and continues a Chinese prefix with Chinese characters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqflow.charlm.baselines import baseline_scores
from seqflow.charlm.generate import CharGenerator
from seqflow.charlm.sources import CharSource
from seqflow.charlm.text import encode_char_splits, load_char_ids, load_char_vocabulary, write_char_splits
from seqflow.charlm.config import CharDataConfig, CharSamplingConfig, CharTrainingConfig

# Common words and phrases; lines are drawn from them with a fixed seed.
PHRASES = [
    "我们", "你们", "他们", "今天", "明天", "天气", "很好", "春天", "花开", "月亮", "星星", "朋友", "喜欢", "音乐",
    "唱歌", "跳舞", "故乡", "回家", "城市", "夜晚", "温柔", "想念", "时间", "世界", "爱情", "快乐", "风吹", "雨下",
    "一起", "走过", "山水", "大海", "小船", "阳光", "窗外", "心里", "不要", "离开", "等待", "永远",
]


def chinese_text(lines: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(lines):
        words = [PHRASES[i] for i in rng.integers(0, len(PHRASES), rng.integers(3, 6))]
        out.append("".join(words[:2]) + "，" + "".join(words[2:]) + "。")
    return "\n".join(out) + "\n"


def _is_chinese(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def test_a_chinese_model_trains_and_continues_a_chinese_prefix(tmp_path: Path):
    import keras

    from seqflow.charlm.train import train_char_model

    text = chinese_text(500)
    assert len(text) > 5_000 and sum(map(_is_chinese, text)) > 4_000
    split_files = write_char_splits(CharSource("test", text), CharDataConfig(block_chars=500), 0, tmp_path)
    encoded = encode_char_splits(split_files, tmp_path)
    vocabulary = load_char_vocabulary(encoded.vocabulary_path)
    train, validation = load_char_ids(encoded, "train"), load_char_ids(encoded, "validation")
    training = CharTrainingConfig(
        architectures=("char_lstm",), embedding_dim=32, rnn_units=64, seq_length=20, batch_size=16, epochs=12,
        learning_rate=1e-2, early_stopping_patience=3, checkpoint=False,
    )
    outcome = train_char_model(
        "char_lstm", train, validation, vocabulary, training, CharSamplingConfig(every_epochs=100), "我们", 0,
        tmp_path / "model",
    )
    baselines = baseline_scores(train, validation, len(vocabulary), training.validation_streams)
    # It learned more than how often each character occurs: below the unigram, and far below its first epoch.
    assert outcome.best_val_loss < baselines.unigram_loss - 0.5
    assert outcome.best_val_loss < outcome.history["val_loss"][0]

    generator = CharGenerator(keras.saving.load_model(outcome.step_model_path, compile=False), vocabulary)
    assert generator.prefix_problem("春天") is None
    continuation = generator.generate("春天", 40, temperature=0.7, seed=1)
    assert len(continuation) == 40
    assert sum(map(_is_chinese, continuation)) >= 25
    assert set(continuation) <= set(text)
