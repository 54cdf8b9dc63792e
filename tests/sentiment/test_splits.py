"""Seeded, stratified splits (split_source), their files (write_splits) and content digests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqflow.sentiment.config import DataConfig
from seqflow.sentiment.datasets import SPLITS, content_digest, read_split, split_source, write_splits
from seqflow.core.errors import DataSourceError
from seqflow.sentiment.sources import SourceData


def reviews(n: int, positive_share: float = 0.5, prefix: str = "review", seed: int = 0) -> pd.DataFrame:
    """``n`` distinct reviews of varied length; the first ``positive_share`` of them positive."""
    lengths = np.random.default_rng(seed).integers(5, 200, size=n)
    positives = int(round(n * positive_share))
    return pd.DataFrame(
        {
            "text": [f"{prefix} {i} " + "x" * int(length) for i, length in enumerate(lengths)],
            "label": [1] * positives + [0] * (n - positives),
        }
    )


def rows(frame: pd.DataFrame) -> Counter:
    return Counter(zip(frame["text"], frame["label"]))


def all_rows(splits: dict[str, pd.DataFrame]) -> Counter:
    total = Counter()
    for frame in splits.values():
        total += rows(frame)
    return total


def positives(frame: pd.DataFrame) -> int:
    return int((frame["label"] == 1).sum())


def assert_stratified(splits: dict[str, pd.DataFrame], share: float, tolerance: float = 2) -> None:
    for name, frame in splits.items():
        assert abs(positives(frame) - share * len(frame)) <= tolerance, (name, positives(frame), len(frame))


# --- split_source ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_held_out_splits_are_stratified_and_sized(share: float) -> None:
    source = SourceData("csv:x", reviews(1_000, share))
    splits = split_source(source, DataConfig(), seed=1)

    assert list(splits) == list(SPLITS)
    assert len(splits["test"]) == 200  # test_fraction 0.2 of 1,000
    assert len(splits["validation"]) == 80  # validation_fraction 0.1 of the 800 left
    assert len(splits["train"]) == 720
    assert_stratified(splits, share)
    for frame in splits.values():
        assert list(frame.columns) == ["text", "label"]
        assert list(frame.index) == list(range(len(frame)))


def test_no_row_lost_or_duplicated_without_limit() -> None:
    frame = reviews(537, 0.45)
    splits = split_source(SourceData("csv:x", frame), DataConfig(), seed=3)
    assert all_rows(splits) == rows(frame)
    assert sum(len(split) for split in splits.values()) == len(frame)


def test_duplicate_reviews_in_the_input_are_kept_not_collapsed() -> None:
    frame = pd.concat([reviews(50), reviews(50).iloc[:5]], ignore_index=True)  # 5 rows appear twice
    splits = split_source(SourceData("csv:x", frame), DataConfig(), seed=0)
    assert all_rows(splits) == rows(frame)


def test_same_seed_same_splits_and_digests() -> None:
    source = SourceData("csv:x", reviews(400))
    first, second = split_source(source, DataConfig(), seed=42), split_source(source, DataConfig(), seed=42)
    for name in SPLITS:
        pd.testing.assert_frame_equal(first[name], second[name])
        assert content_digest(first[name]) == content_digest(second[name])


def test_different_seed_different_splits() -> None:
    source = SourceData("csv:x", reviews(400))
    first, second = split_source(source, DataConfig(), seed=1), split_source(source, DataConfig(), seed=2)
    assert rows(first["test"]) != rows(second["test"])
    for name in SPLITS:
        assert content_digest(first[name]) != content_digest(second[name])


def test_splits_are_shuffled_not_grouped_by_label() -> None:
    splits = split_source(SourceData("csv:x", reviews(400)), DataConfig(), seed=0)
    labels = splits["train"]["label"].tolist()
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)


@pytest.mark.parametrize("limit", [20, 21, 23, 57, 100, 399])
def test_limit_is_respected_exactly_and_stratified(limit: int) -> None:
    # 23 rows from two classes of 23 used to round 11.5 up twice and give 24.
    frame = reviews(46 if limit < 46 else 400)
    splits = split_source(SourceData("csv:x", frame), DataConfig(limit=limit), seed=5)
    assert sum(len(split) for split in splits.values()) == limit
    assert not all_rows(splits) - rows(frame)  # a sample of the input, nothing invented or repeated
    assert_stratified(splits, 0.5, tolerance=1)


def test_limit_larger_than_the_data_keeps_everything() -> None:
    frame = reviews(60)
    splits = split_source(SourceData("csv:x", frame), DataConfig(limit=1_000), seed=0)
    assert all_rows(splits) == rows(frame)


@pytest.mark.parametrize("limit", [20, 23, 101])
def test_limit_with_source_test_split_gives_test_its_share(limit: int) -> None:
    source = SourceData("aclimdb:x", reviews(300, prefix="train"), reviews(300, prefix="test"))
    splits = split_source(source, DataConfig(limit=limit), seed=0)
    assert sum(len(split) for split in splits.values()) == limit
    assert len(splits["test"]) == round(limit * 0.2)
    assert not rows(splits["test"]) - rows(source.test)
    assert_stratified(splits, 0.5, tolerance=1)


def test_max_review_chars_filters_before_splitting() -> None:
    frame = reviews(500)
    limit_chars = 120
    splits = split_source(SourceData("csv:x", frame), DataConfig(max_review_chars=limit_chars), seed=0)
    kept = frame[frame["text"].str.len() <= limit_chars]
    assert 0 < len(kept) < len(frame)
    assert all_rows(splits) == rows(kept)
    for split in splits.values():
        assert split["text"].str.len().max() <= limit_chars


def test_max_review_chars_then_limit() -> None:
    frame = reviews(500)
    splits = split_source(SourceData("csv:x", frame), DataConfig(max_review_chars=120, limit=50), seed=0)
    assert sum(len(split) for split in splits.values()) == 50
    for split in splits.values():
        assert split["text"].str.len().max() <= 120


def test_source_test_split_is_kept_as_test() -> None:
    source = SourceData("aclimdb:x", reviews(300, 0.5, prefix="train"), reviews(120, 0.5, prefix="test"))
    splits = split_source(source, DataConfig(), seed=0)
    assert rows(splits["test"]) == rows(source.test)
    assert rows(splits["train"]) + rows(splits["validation"]) == rows(source.train)
    assert len(splits["validation"]) == 30
    assert_stratified(splits, 0.5)


def test_source_test_split_respects_max_review_chars() -> None:
    source = SourceData("aclimdb:x", reviews(300, prefix="train"), reviews(300, prefix="test", seed=1))
    splits = split_source(source, DataConfig(max_review_chars=100), seed=0)
    assert rows(splits["test"]) == rows(source.test[source.test["text"].str.len() <= 100])


def test_unvalidated_labels_are_split_not_dropped() -> None:
    # The raw contract runs after splitting: odd labels must reach some split so it can report them.
    frame = reviews(100)
    frame.loc[3, "label"] = 7
    frame.loc[4, "label"] = np.nan
    splits = split_source(SourceData("csv:x", frame), DataConfig(), seed=0)
    labels = pd.concat(splits.values())["label"]
    assert (labels == 7).sum() == 1
    assert labels.isna().sum() == 1
    assert len(labels) == 100


def test_text_labels_are_stratified_too() -> None:
    frame = reviews(200, 0.25).assign(label=lambda f: f["label"].map({1: "pos", 0: "neg"}))
    splits = split_source(SourceData("csv:x", frame), DataConfig(), seed=0)
    assert all_rows(splits) == rows(frame)
    for split in splits.values():
        assert abs((split["label"] == "pos").sum() - 0.25 * len(split)) <= 2


@pytest.mark.parametrize(
    ("frame", "config"),
    [
        (reviews(1), DataConfig()),  # one row cannot fill three splits
        (reviews(100), DataConfig(max_review_chars=3)),  # every review is longer than 3 characters
    ],
)
def test_empty_split_is_a_data_source_error(frame: pd.DataFrame, config: DataConfig) -> None:
    # Refused before splitting, with the rows it has and how many the splits need.
    with pytest.raises(DataSourceError, match="too few for the splits") as info:
        split_source(SourceData("csv:/data/tiny.csv", frame), config, seed=0)
    assert "csv:/data/tiny.csv" in str(info.value)
    assert "at least 3 rows of each label" in str(info.value)


def test_empty_source_test_split_is_a_data_source_error() -> None:
    short_train = pd.DataFrame({"text": [f"ok {i}" for i in range(100)], "label": [0, 1] * 50})
    source = SourceData("aclimdb:x", short_train, reviews(10))  # every test review is longer than 10 chars
    with pytest.raises(DataSourceError, match=r"leaves split\(s\) \['test'\] empty"):
        split_source(source, DataConfig(max_review_chars=10), seed=0)


def test_inputs_are_not_mutated() -> None:
    train = reviews(300).set_index(pd.Index(range(1000, 1300)))
    test = reviews(100, prefix="test")
    train_before, test_before = train.copy(deep=True), test.copy(deep=True)
    config = DataConfig(limit=150, max_review_chars=150)
    split_source(SourceData("x", train), config, seed=0)
    split_source(SourceData("x", train, test), config, seed=0)
    pd.testing.assert_frame_equal(train, train_before)
    pd.testing.assert_frame_equal(test, test_before)


# --- content_digest and write_splits ---------------------------------------------------------------------


def test_content_digest_covers_text_label_and_order_but_not_index() -> None:
    frame = reviews(20)
    digest = content_digest(frame)
    assert digest == content_digest(frame.copy())
    assert digest == content_digest(frame.set_index(pd.Index(range(100, 120))))
    assert digest == content_digest(frame.assign(extra=1))
    assert digest != content_digest(frame.iloc[::-1])
    assert digest != content_digest(frame.assign(label=frame["label"].where(frame.index != 0, 0)))
    assert digest != content_digest(frame.assign(text=frame["text"].str.upper()))
    # A field boundary cannot be moved without changing the digest.
    assert content_digest(pd.DataFrame({"text": ["a\tb"], "label": [1]})) != content_digest(
        pd.DataFrame({"text": ["a"], "label": [1]})
    )


def test_content_digest_is_a_known_value() -> None:
    # Pinned so a change to the hashing (which renames every dataset folder) is a conscious one.
    frame = pd.DataFrame({"text": ["good", "bad"], "label": [1, 0]})
    import hashlib

    assert content_digest(frame) == hashlib.sha256(b"'good'\t1\n'bad'\t0\n").hexdigest()


def test_write_splits_files_are_readable_and_match_digests(tmp_path: Path) -> None:
    source = SourceData("csv:x", reviews(300))
    config = DataConfig()
    splits = split_source(source, config, seed=7)
    split_files = write_splits(splits, source, config, seed=7, artifacts_dir=tmp_path)

    assert split_files.source == "csv:x"
    assert split_files.test_from_source is False
    assert split_files.rows == {name: len(splits[name]) for name in SPLITS}
    assert split_files.dataset_dir == tmp_path / "datasets" / split_files.digest[:16]
    for name in SPLITS:
        path = split_files.path_of(name)
        assert path == split_files.dataset_dir / f"{name}.parquet"
        read_back = read_split(split_files, name)
        pd.testing.assert_frame_equal(read_back, splits[name])
        assert content_digest(read_back) == split_files.digests[name] == content_digest(splits[name])
    assert not list(split_files.dataset_dir.glob("*.partial"))

    manifest = json.loads((split_files.dataset_dir / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["digests"] == split_files.digests
    assert manifest["rows"] == split_files.rows
    assert manifest["data_config"]["source"] == "embedded"  # the DataConfig as passed


def test_digests_are_stable_across_runs_and_change_with_the_seed(tmp_path: Path) -> None:
    source = SourceData("csv:x", reviews(300))
    config = DataConfig()

    def written(seed: int, where: Path):
        return write_splits(split_source(source, config, seed), source, config, seed, where)

    first, again = written(11, tmp_path / "a"), written(11, tmp_path / "b")
    assert first.digests == again.digests
    assert first.digest == again.digest
    assert first.dataset_dir.name == again.dataset_dir.name
    rewritten = written(11, tmp_path / "a")  # rerun into the same folder: same place, same content
    assert rewritten.dataset_dir == first.dataset_dir
    assert content_digest(read_split(rewritten, "train")) == first.digests["train"]
    other = written(12, tmp_path / "a")
    assert other.digest != first.digest
    assert other.dataset_dir != first.dataset_dir


def test_write_splits_marks_source_test_split(tmp_path: Path) -> None:
    source = SourceData("aclimdb:x", reviews(100, prefix="train"), reviews(40, prefix="test"))
    split_files = write_splits(split_source(source, DataConfig(), 0), source, DataConfig(), 0, tmp_path)
    assert split_files.test_from_source is True
    assert rows(read_split(split_files, "test")) == rows(source.test)


def test_digest_of_missing_values_survives_the_parquet_round_trip(tmp_path: Path) -> None:
    # Missing text is NaN in memory and None when read back; the stored digest must match the file.
    frame = reviews(60)
    frame.loc[[2, 30], "text"] = np.nan
    frame["label"] = frame["label"].astype(float)
    frame.loc[5, "label"] = np.nan
    source = SourceData("csv:x", frame)
    split_files = write_splits(split_source(source, DataConfig(), 0), source, DataConfig(), 0, tmp_path)
    for name in SPLITS:
        assert content_digest(read_split(split_files, name)) == split_files.digests[name]


def test_extra_training_rows_join_train_only():
    from seqflow.sentiment.datasets import with_extra_training_rows

    def frame(prefix: str, rows: int) -> pd.DataFrame:
        return pd.DataFrame({"text": [f"{prefix} {i}" for i in range(rows)], "label": [i % 2 for i in range(rows)]})

    splits = {"train": frame("train", 6), "validation": frame("validation", 4), "test": frame("test", 4)}
    extra = SourceData(spec="csv:extra.csv", train=frame("extra", 5), test=frame("extra test", 3))
    joined = with_extra_training_rows(splits, extra, seed=7)
    assert joined["validation"] is splits["validation"] and joined["test"] is splits["test"]
    assert sorted(joined["train"]["text"]) == sorted([*splits["train"]["text"], *extra.train["text"], *extra.test["text"]])
    assert joined["train"]["text"].tolist() == with_extra_training_rows(splits, extra, seed=7)["train"]["text"].tolist()
