"""Cache keys: code hashes of the modules a task uses, content digests of inputs, config slices, and the
words a miss is explained with. No Prefect or MLflow needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seqflow.core import caching
from seqflow.config import DataConfig, TokenisationConfig


def _split_files(digests: dict[str, str]):
    from seqflow.sentiment.datasets import SplitFiles

    folder = Path("/nonexistent")
    return SplitFiles(
        source="csv", dataset_dir=folder, train_path=folder / "train.parquet", validation_path=folder / "v.parquet",
        test_path=folder / "t.parquet", digests=digests, rows={}, test_from_source=False,
    )


DIGESTS = {"train": "a" * 64, "validation": "b" * 64, "test": "c" * 64}


def test_code_hash_follows_file_contents_not_modification_times(tmp_path, monkeypatch):
    module = tmp_path / "seqflow_key_probe.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = caching.code_digests(("seqflow_key_probe",))
    module.touch()
    assert caching.code_digests(("seqflow_key_probe",)) == first
    module.write_text("X = 2\n")
    assert caching.code_digests(("seqflow_key_probe",)) != first


def test_each_task_hashes_the_helper_modules_it_uses():
    # Helper modules, not just the task body: train depends on the training loop and the architectures.
    assert {"seqflow.sentiment.train", "seqflow.models.architectures", "seqflow.sentiment.steps"} <= set(caching.TASK_MODULES["train"])
    assert "seqflow.sentiment.train" not in caching.TASK_MODULES["tokenise"]
    assert "seqflow.sentiment.tokenise" in caching.TASK_MODULES["tokenise"]
    # A package stands for all of its modules (the contract suites).
    files = caching.module_files("seqflow.data_contracts")
    assert {path.name for path in files} >= {"__init__.py", "raw_reviews.py", "tokenised_reviews.py"}
    for modules in caching.TASK_MODULES.values():
        assert set(caching.code_digests(modules)) == set(modules)


def test_tokenise_key_follows_its_config_slice_and_input_digests():
    inputs = {"split_files": _split_files(DIGESTS), "tokenisation": TokenisationConfig(max_length=200), "artifacts_dir": "a"}
    parts = caching.key_parts("tokenise", inputs)
    # The output folder is not part of the key; content digests are.
    assert parts.key() == caching.key_parts("tokenise", {**inputs, "artifacts_dir": "elsewhere"}).key()
    longer = caching.key_parts("tokenise", {**inputs, "tokenisation": TokenisationConfig(max_length=300)})
    assert longer.key() != parts.key()
    assert caching.describe_change(parts.as_dict(), longer.as_dict()) == "tokenisation.max_length changed (200 -> 300)"
    other_data = caching.key_parts("tokenise", {**inputs, "split_files": _split_files({**DIGESTS, "train": "d" * 64})})
    assert caching.describe_change(parts.as_dict(), other_data.as_dict()) == "input changed (train digest)"


def test_download_key_is_the_source_content_not_its_path(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text("text,label\ngood,1\n")
    inputs = {"data_config": DataConfig(source=f"csv:{source}"), "seed": 1, "artifacts_dir": "a"}
    before = caching.key_parts("download", inputs)
    assert caching.key_parts("download", inputs).key() == before.key()
    source.write_text("text,label\nbad,0\n")
    after = caching.key_parts("download", inputs)
    assert after.key() != before.key()
    assert caching.describe_change(before.as_dict(), after.as_dict()) == "input changed (source)"
    reseeded = caching.key_parts("download", {**inputs, "seed": 2})
    assert caching.describe_change(after.as_dict(), reseeded.as_dict()) == "seed changed (1 -> 2)"


def test_a_miss_names_changed_code_and_says_when_nothing_earlier_exists():
    parts = caching.key_parts("tokenise", {"split_files": _split_files(DIGESTS), "tokenisation": TokenisationConfig()})
    edited = dataclasses.replace(parts, code={**parts.code, "seqflow.sentiment.tokenise": "0" * 64})
    assert caching.describe_change(parts.as_dict(), edited.as_dict()) == "code changed (seqflow.sentiment.tokenise)"
    assert caching.describe_change(None, parts.as_dict()) == "no earlier result"
    assert "no earlier result with these inputs" in caching.describe_change(parts.as_dict(), parts.as_dict())


def test_split_files_that_changed_on_disk_are_not_usable(tmp_path, short_reviews):
    from seqflow.sentiment.datasets import split_source, write_splits
    from seqflow.sentiment.sources import SourceData

    config = DataConfig(source="csv:x")
    split_files = write_splits(split_source(SourceData("csv:x", short_reviews), config, 1), SourceData("csv:x", short_reviews), config, 1, tmp_path)
    assert caching.split_files_problem(split_files) is None
    short_reviews.head(3).to_parquet(split_files.test_path, index=False)
    assert caching.split_files_problem(split_files) == f"split file {split_files.test_path} changed on disk"
    split_files.test_path.unlink()
    assert caching.split_files_problem(split_files) == f"split file {split_files.test_path} is gone"


@pytest.mark.parametrize("task_name", caching.TASK_ORDER + caching.CHARLM_TASK_ORDER)
def test_every_cached_task_has_key_parts_and_an_output_check(task_name):
    assert task_name in caching._KEY_PARTS and task_name in caching._OUTPUT_PROBLEMS and task_name in caching.TASK_MODULES


def test_train_key_follows_its_own_architectures_settings_only(tmp_path):
    from types import SimpleNamespace

    from seqflow.config import PipelineConfig, TrainingConfig, with_overrides

    vocabulary_path = tmp_path / "vocabulary.txt"
    vocabulary_path.write_text("\n[UNK]\ngood")
    base = PipelineConfig(training=TrainingConfig(architectures=("embedding_pool", "lstm")))

    def parts(architecture: str, config: PipelineConfig) -> caching.KeyParts:
        inputs = {
            "architecture": architecture,
            "config": config,
            "split_files": SimpleNamespace(digest="d" * 64),
            "tokenised": SimpleNamespace(array_digest="e" * 64, vocabulary_path=vocabulary_path),
            "settings": SimpleNamespace(tracking_uri="sqlite:///m.db", experiment_name="x", registered_model_name="m"),
        }
        return caching.key_parts("train", inputs)

    # Tuning one architecture (the way people rerun one task) must not retrain the others...
    tuned = with_overrides(base, {"training.per_architecture": "embedding_pool:learning_rate=0.003"})
    assert parts("lstm", tuned).key() == parts("lstm", base).key()
    # ...and the tuned one's miss names the field, not the override list.
    assert caching.describe_change(parts("embedding_pool", base).as_dict(), parts("embedding_pool", tuned).as_dict()) == (
        "training.learning_rate changed (0.001 -> 0.003)"
    )
    # An override that sets what the shared setting already is changes nothing.
    same = with_overrides(base, {"training.per_architecture": "lstm:learning_rate=0.001"})
    assert parts("lstm", same).key() == parts("lstm", base).key()
