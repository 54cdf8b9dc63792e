"""Cache keys, output checks and the rerun state of the character-model tasks. No Prefect or MLflow needed."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.core import caching
from seqflow.charlm import cache_checks
from seqflow.charlm.text import encode_char_splits, write_char_splits
from seqflow.charlm.sources import CharSource
from seqflow.charlm.config import CharDataConfig, with_charlm_overrides
from seqflow.core.settings import TrackingSettings
from seqflow.tasks import charlm as charlm_tasks
from tests.charlm.conftest import tiny_charlm_config_in

SETTINGS = TrackingSettings(tracking_uri="sqlite:///unused.db", experiment_name="e", registered_model_name="m")


@pytest.fixture
def written(tmp_path):
    """Real split files and character ids of a short text."""
    text = "".join(f"line {i}: to be or not to be\n" for i in range(200))
    config = CharDataConfig(source="text:x", block_chars=500)
    split_files = write_char_splits(CharSource("text:x", text), config, 7, tmp_path)
    return split_files, encode_char_splits(split_files, tmp_path)


def test_train_key_names_the_changed_setting_and_ignores_the_other_architectures(tmp_path, written):
    split_files, encoded = written
    config = tiny_charlm_config_in(tmp_path)
    inputs = {"settings": SETTINGS, "architecture": "char_gru", "config": config, "split_files": split_files,
              "encoded": encoded, "parent_run_id": "p1"}
    parts = caching.key_parts(charlm_tasks.train, inputs)
    assert parts.identity == "train-char_gru"
    # Another parent run or other architectures alongside: the same model, the same key.
    alone = with_charlm_overrides(config, {"training.architectures": "char_gru"})
    assert caching.key_parts(charlm_tasks.train, {**inputs, "config": alone, "parent_run_id": "p2"}).key() == parts.key()
    longer = caching.key_parts(charlm_tasks.train, {**inputs, "config": with_charlm_overrides(config, {"training.epochs": "3"})})
    assert caching.describe_change(parts.as_dict(), longer.as_dict()) == "training.epochs changed (2 -> 3)"
    # Samples are logged by training, so their settings are part of its key.
    other_prefix = with_charlm_overrides(config, {"sampling.prefix": "JULIET:"})
    assert caching.key_parts(charlm_tasks.train, {**inputs, "config": other_prefix}).key() != parts.key()
    # Evaluation depends on the validation pass's settings only, not on training ones.
    trained = type("Trained", (), {"architecture": "char_gru", "run_id": "r1"})()
    evaluate = {"settings": SETTINGS, "trained": trained, "encoded": encoded, "config": config}
    assert caching.key_parts(charlm_tasks.evaluate, evaluate).key() == caching.key_parts(
        charlm_tasks.evaluate, {**evaluate, "config": with_charlm_overrides(config, {"training.epochs": "3"})}
    ).key()


def test_load_text_key_is_the_text_content_not_its_path(tmp_path):
    path = tmp_path / "lyrics.txt"
    path.write_text("床前明月光\n" * 50, encoding="utf-8")
    inputs = {"data_config": CharDataConfig(source=f"text:{path}"), "seed": 1, "artifacts_dir": "a"}
    before = caching.key_parts(charlm_tasks.load_text, inputs)
    assert caching.key_parts(charlm_tasks.load_text, {**inputs, "artifacts_dir": "b"}).key() == before.key()
    path.write_text("疑是地上霜\n" * 50, encoding="utf-8")
    after = caching.key_parts(charlm_tasks.load_text, inputs)
    assert caching.describe_change(before.as_dict(), after.as_dict()) == "input changed (source)"
    plays = caching.key_parts(charlm_tasks.load_text, {**inputs, "data_config": CharDataConfig(source="embedded:hamlet")})
    assert plays.inputs["source"] != caching.key_parts(
        charlm_tasks.load_text, {**inputs, "data_config": CharDataConfig(source="embedded:macbeth")}
    ).inputs["source"]


def test_changed_or_missing_char_outputs_are_not_usable(written):
    split_files, encoded = written
    assert cache_checks.char_split_files_problem(split_files) is None
    assert cache_checks.char_encoded_problem(encoded) is None
    ids = np.load(encoded.validation_ids_path)
    np.save(encoded.validation_ids_path, ids[::-1].copy())
    assert cache_checks.char_encoded_problem(encoded) == f"character ids in {encoded.encoded_dir} changed on disk"
    encoded.vocabulary_path.unlink()
    assert cache_checks.char_encoded_problem(encoded) == f"{encoded.vocabulary_path} is gone"
    split_files.train_path.write_text("something else", encoding="utf-8")
    assert cache_checks.char_split_files_problem(split_files) == f"split file {split_files.train_path} changed on disk"


def test_charlm_state_reads_back_as_written(tmp_path, written):
    from seqflow.charlm.records import TrainedCharModel
    from seqflow.charlm.state import CharLMState, charlm_state_from_json
    from seqflow.core.state import state_to_json

    split_files, encoded = written
    config = tiny_charlm_config_in(tmp_path, **{"sampling.prefix": "", "data.max_chars": "None"})
    trained = TrainedCharModel("char_gru", "r1", tmp_path / "step.keras", "runs:/r1/model", {"loss": [2.0, 1.5]},
                               2, 2, 3.0, 1.5, 1000)
    state = CharLMState(
        config=config, split_files=split_files, encoded=encoded, contract_reports=[], trained=[trained], evaluated=[], registration=None
    )
    loaded = charlm_state_from_json(state_to_json(state))
    assert loaded == state
    assert loaded.trained_model("char_gru") == trained
