"""Fixtures for the character-model tests: tiny real texts and fast configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqflow.charlm.config import resolve_charlm_config
from seqflow.core.settings import TrackingSettings
from tests.flows.conftest import tracking_settings_for

# A Chinese text made in the tests: lines of a few classical poems (public domain), repeated with variations so
# a split has enough characters; every character of validation also occurs in training.
CHINESE_LINES = [
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
    "红豆生南国，春来发几枝。愿君多采撷，此物最相思。",
    "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。",
]


@pytest.fixture
def chinese_text_path(tmp_path: Path) -> Path:
    lines = [CHINESE_LINES[(i * 3) % len(CHINESE_LINES)] for i in range(160)]
    path = tmp_path / "poems.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def charlm_settings_in(folder: Path) -> TrackingSettings:
    """A fresh SQLite tracking store and registry in ``folder``, with the charlm names."""
    return tracking_settings_for(folder).for_charlm()


def tiny_charlm_config_in(folder: Path, **overrides: str):
    """~24k characters of Romeo and Juliet, RNNs of 32 units, 2 epochs: seconds per model."""
    base = {
        "data.source": "embedded:romeo-and-juliet",
        "data.max_chars": "24000",
        "data.block_chars": "2000",
        "artifacts_dir": str(folder / "artifacts"),
        "training.architectures": "char_gru,char_lstm",
        "training.rnn_units": "32",
        "training.embedding_dim": "16",
        "training.seq_length": "50",
        "training.batch_size": "16",
        "training.epochs": "2",
        "training.learning_rate": "0.01",
        "sampling.every_epochs": "1",
        "sampling.length": "40",
        "sampling.prefix": "ROMEO:",
        "promotion.max_val_perplexity": "1000",
        # Two epochs of 32 units do not beat a Kneser-Ney n-gram; the gate has its own tests.
        "promotion.require_beating_ngram": "false",
    }
    return resolve_charlm_config("quick", None, {**base, **overrides})


@pytest.fixture
def charlm_tracking_settings(tmp_path: Path) -> TrackingSettings:
    return charlm_settings_in(tmp_path)


@pytest.fixture
def tiny_charlm_config(tmp_path: Path):
    def make(**overrides: str):
        return tiny_charlm_config_in(tmp_path, **overrides)

    return make
