"""Cache keys: code hashes of the modules a task uses, content digests of inputs, config slices, and the
words a miss is explained with. No Prefect or MLflow needed."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from seqflow.core import caching
from seqflow.sentiment.config import DataConfig, TokenisationConfig


def _split_files(digests: dict[str, str]):
    from seqflow.sentiment.datasets import SplitFiles

    folder = Path("/nonexistent")
    return SplitFiles(
        source="csv", dataset_dir=folder, train_path=folder / "train.parquet", validation_path=folder / "v.parquet",
        test_path=folder / "t.parquet", digests=digests, rows={}, test_from_source=False,
    )


DIGESTS = {"train": "a" * 64, "validation": "b" * 64, "test": "c" * 64}


def _tasks():
    """The pipelines' task modules (imported here: they import Prefect, MLflow and Keras)."""
    from seqflow.tasks import charlm, sentiment

    return sentiment, charlm


def _edited(target: Path):
    """A source reader that sees ``target`` edited (a new line at its end) and every other file as it is."""

    def read(path: Path) -> bytes:
        return path.read_bytes() + (b"\n# edited\n" if path == target else b"")

    return read


def test_editing_the_comparison_table_retrains_nothing():
    import inspect

    from seqflow.core.codedigest import code_digests_of, function_code_digests
    from seqflow.sentiment.comparison import RunSummary

    sentiment, charlm = _tasks()
    renderer = Path(inspect.getsourcefile(RunSummary.render))
    for train in (sentiment.train, charlm.train):
        assert code_digests_of(train.fn, read=_edited(renderer)) == code_digests_of(train.fn), train.fn.__module__
    # The edit is seen where the table is used (finishing the execution), not missed everywhere.
    before = function_code_digests("seqflow.tasks.tracking", "finish_tracking")
    after = function_code_digests("seqflow.tasks.tracking", "finish_tracking", read=_edited(renderer))
    assert [name for name in after if after[name] != before[name]] == ["seqflow.sentiment.comparison"]


def test_editing_how_a_champion_is_rescored_reruns_registration():
    import inspect

    from seqflow.core import registry
    from seqflow.core.codedigest import code_digests_of

    sentiment, charlm = _tasks()
    # Both pipelines re-score a champion through the core registry (champion_score_on).
    rescoring = Path(inspect.getsourcefile(registry.champion_score_on))
    for register in (sentiment.register, charlm.register):
        before, after = code_digests_of(register.fn), code_digests_of(register.fn, read=_edited(rescoring))
        assert [name for name in after if after[name] != before[name]] == ["seqflow.core.registry"], register.fn.__module__
    # ...and nothing upstream of it: training and evaluation do not call the registry.
    for step in (sentiment.train, sentiment.evaluate, charlm.train, charlm.evaluate):
        assert code_digests_of(step.fn, read=_edited(rescoring)) == code_digests_of(step.fn)


def test_each_task_hashes_the_helper_modules_it_uses():
    from seqflow.core.codedigest import code_digests_of

    sentiment, _ = _tasks()
    train = set(code_digests_of(sentiment.train.fn))
    # Helper modules, not just the task body: train depends on the training loop and the architectures.
    assert {"seqflow.tasks.sentiment:train", "seqflow.sentiment.train", "seqflow.models.architectures"} <= train
    tokenise = set(code_digests_of(sentiment.tokenise.fn))
    assert "seqflow.sentiment.train" not in tokenise and "seqflow.sentiment.tokenise" in tokenise
    # Another task's helpers in the same module are not part of this one's code.
    assert "seqflow.sentiment.behaviour" not in train and "seqflow.sentiment.behaviour" in code_digests_of(sentiment.evaluate.fn)
    # A contract suite imported inside a function is found (seqflow.sentiment.contracts imports it there).
    assert "seqflow.data_contracts.raw_reviews" in code_digests_of(sentiment.check_raw.fn)
    # Config values are part of the key; config.py's code is not.
    assert not any(name.endswith(".config") or name.endswith(".profiles") for name in train)


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """A small package to read imports from: a task module, helpers reached in each way an import can be
    written, and modules that must not be reached."""
    root = tmp_path / "probe_pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "sub/__init__.py": "",
        "tasks.py": (
            "from __future__ import annotations\n"
            "from typing import TYPE_CHECKING\n"
            "from probe_pkg import direct\n"
            "from probe_pkg.sub import by_name_only\n"
            "from probe_pkg.unused_by_step import helper\n"
            "if TYPE_CHECKING:\n"
            "    from probe_pkg import typing_only\n"
            "try:\n"
            "    from probe_pkg.fast import speed\n"
            "except ImportError:\n"
            "    from probe_pkg.slow import speed\n"
            "LIMIT = direct.VALUE\n"
            "def _helper():\n"
            "    return LIMIT\n"
            "def step(x: typing_only.T) -> None:\n"
            "    from probe_pkg.sub import local\n"
            "    return _helper() + by_name_only.thing() + local.VALUE + speed\n"
            "def other_step():\n"
            "    return helper()\n"
        ),
        "direct.py": "VALUE = 1\n",
        "sub/by_name_only.py": "from ..transitive import thing as thing\n",
        "transitive.py": "def thing():\n    return 2\n",
        "sub/local.py": "VALUE = 3\n",
        "unused_by_step.py": "def helper():\n    return 4\n",
        "typing_only.py": "T = int\n",
        "fast.py": "speed = 1\n",
        "slow.py": "speed = 0\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    # Finding a submodule imports its package: forget this one, so the next test finds its own files.
    for name in [name for name in sys.modules if name.split(".")[0] == "probe_pkg"]:
        del sys.modules[name]


def test_code_digests_follow_what_the_function_imports(probe_package):
    from seqflow.core.codedigest import function_code_digests

    digests = function_code_digests("probe_pkg.tasks", "step", package="probe_pkg")
    assert set(digests) == {
        "probe_pkg.tasks:step", "probe_pkg.direct", "probe_pkg.sub.by_name_only", "probe_pkg.transitive", "probe_pkg.sub.local",
        "probe_pkg.fast", "probe_pkg.slow",
    }
    assert set(function_code_digests("probe_pkg.tasks", "other_step", package="probe_pkg")) == {
        "probe_pkg.tasks:other_step", "probe_pkg.unused_by_step",
    }


def test_code_digests_follow_file_contents_not_modification_times(probe_package):
    from seqflow.core.codedigest import function_code_digests

    def digests():
        return function_code_digests("probe_pkg.tasks", "step", package="probe_pkg")

    first = digests()
    (probe_package / "transitive.py").touch()
    assert digests() == first
    (probe_package / "transitive.py").write_text("def thing():\n    return 5\n")
    changed = digests()
    assert [name for name in first if changed[name] != first[name]] == ["probe_pkg.transitive"]
    # Editing another step in the same module leaves this step's digest as it was; editing a helper it calls
    # changes it.
    tasks = probe_package / "tasks.py"
    tasks.write_text(tasks.read_text().replace("return helper()", "return helper() + 1"))
    assert digests() == changed
    tasks.write_text(tasks.read_text().replace("return LIMIT", "return LIMIT + 1"))
    assert digests()["probe_pkg.tasks:step"] != changed["probe_pkg.tasks:step"]


def test_tokenise_key_follows_its_config_slice_and_input_digests():
    inputs = {"split_files": _split_files(DIGESTS), "tokenisation": TokenisationConfig(max_length=200), "artifacts_dir": "a"}
    parts = caching.key_parts(_tasks()[0].tokenise, inputs)
    # The output folder is not part of the key; content digests are.
    assert parts.key() == caching.key_parts(_tasks()[0].tokenise, {**inputs, "artifacts_dir": "elsewhere"}).key()
    longer = caching.key_parts(_tasks()[0].tokenise, {**inputs, "tokenisation": TokenisationConfig(max_length=300)})
    assert longer.key() != parts.key()
    assert caching.describe_change(parts.as_dict(), longer.as_dict()) == "tokenisation.max_length changed (200 -> 300)"
    other_data = caching.key_parts(_tasks()[0].tokenise, {**inputs, "split_files": _split_files({**DIGESTS, "train": "d" * 64})})
    assert caching.describe_change(parts.as_dict(), other_data.as_dict()) == "input changed (train digest)"


def test_download_key_is_the_source_content_not_its_path(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text("text,label\ngood,1\n")
    inputs = {"data_config": DataConfig(source=f"csv:{source}"), "seed": 1, "artifacts_dir": "a"}
    before = caching.key_parts(_tasks()[0].download, inputs)
    assert caching.key_parts(_tasks()[0].download, inputs).key() == before.key()
    source.write_text("text,label\nbad,0\n")
    after = caching.key_parts(_tasks()[0].download, inputs)
    assert after.key() != before.key()
    assert caching.describe_change(before.as_dict(), after.as_dict()) == "input changed (source)"
    reseeded = caching.key_parts(_tasks()[0].download, {**inputs, "seed": 2})
    assert caching.describe_change(after.as_dict(), reseeded.as_dict()) == "seed changed (1 -> 2)"


def test_a_miss_names_changed_code_and_says_when_nothing_earlier_exists():
    parts = caching.key_parts(_tasks()[0].tokenise, {"split_files": _split_files(DIGESTS), "tokenisation": TokenisationConfig()})
    assert "seqflow.sentiment.tokenise" in parts.code
    edited = dataclasses.replace(parts, code={**parts.code, "seqflow.sentiment.tokenise": "0" * 64})
    assert caching.describe_change(parts.as_dict(), edited.as_dict()) == "code changed (seqflow.sentiment.tokenise)"
    assert caching.describe_change(None, parts.as_dict()) == "no earlier result"
    assert "no earlier result with these inputs" in caching.describe_change(parts.as_dict(), parts.as_dict())


def test_split_files_that_changed_on_disk_are_not_usable(tmp_path, short_reviews):
    from seqflow.sentiment import cache_checks
    from seqflow.sentiment.datasets import split_source, write_splits
    from seqflow.sentiment.sources import SourceData

    config = DataConfig(source="csv:x")
    split_files = write_splits(split_source(SourceData("csv:x", short_reviews), config, 1), SourceData("csv:x", short_reviews), config, 1, tmp_path)
    assert cache_checks.split_files_problem(split_files) is None
    short_reviews.head(3).to_parquet(split_files.test_path, index=False)
    assert cache_checks.split_files_problem(split_files) == f"split file {split_files.test_path} changed on disk"
    split_files.test_path.unlink()
    assert cache_checks.split_files_problem(split_files) == f"split file {split_files.test_path} is gone"


def test_every_pipeline_task_declares_its_cache_beside_it_and_is_named_like_its_function():
    sentiment, charlm = _tasks()
    for module in (sentiment, charlm):
        for name, task in vars(module).items():
            if getattr(task, "fn", None) is None or task.fn.__module__ != module.__name__:
                continue
            assert task.name == task.fn.__name__ == name
            policy = task.cache_policy
            assert isinstance(policy, caching.PipelineCache) and policy.key is not None and policy.check is not None, name


def test_train_key_follows_its_own_architectures_settings_only(tmp_path):
    from types import SimpleNamespace

    from seqflow.sentiment.config import PipelineConfig, TrainingConfig, with_overrides

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
        return caching.key_parts(_tasks()[0].train, inputs)

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
