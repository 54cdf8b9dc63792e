"""Seeded, stratified train / validation / test splits, written to Parquet with content digests.

Downstream tasks receive a :class:`SplitFiles` (paths, digests, row counts), never DataFrames, so every task
can run in another process or be rerun from the files alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from seqflow.core.files import partial_path, write_text_atomically
from seqflow.sentiment.config import DataConfig
from seqflow.core.errors import DataSourceError
from seqflow.core.splits import SplitFilesOnDisk, combined_digest
from seqflow.sentiment.sources import LABEL_COLUMN, TEXT_COLUMN, SourceData

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitFiles(SplitFilesOnDisk):
    """The three splits on disk, what identifies their content, and their rows."""

    splits: ClassVar[tuple[str, ...]] = SPLITS

    test_path: Path
    rows: dict[str, int]
    # True when the test split is the source's own (tfds, aclImdb), False when we held it out ourselves.
    test_from_source: bool

    def progress_note(self) -> str:
        """One line for the run's progress: the rows of each split."""
        return f"{sum(self.rows.values()):,} reviews: " + ", ".join(f"{split} {n:,}" for split, n in self.rows.items())


def _digest_value(value: object) -> object:
    # A missing value is NaN in memory but may read back from Parquet as None: hash both the same way.
    return None if pd.api.types.is_scalar(value) and pd.isna(value) else value


def content_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows' text and label, in order; independent of file format and index."""
    hasher = hashlib.sha256()
    for text, label in zip(frame[TEXT_COLUMN].tolist(), frame[LABEL_COLUMN].tolist()):
        hasher.update(repr(_digest_value(text)).encode("utf-8", "surrogatepass"))
        hasher.update(b"\t")
        hasher.update(repr(_digest_value(label)).encode())
        hasher.update(b"\n")
    return hasher.hexdigest()


def _stratum(frame: pd.DataFrame) -> pd.Series:
    # Labels are not validated yet (the raw contract runs after splitting), so stratify on their text form:
    # a label of 2 or NaN lands in some split and the contract reports it there.
    return frame[LABEL_COLUMN].astype(str)


def _class_counts(sizes: list[int], total: int) -> list[int]:
    """``total`` apportioned over classes of ``sizes`` in proportion (largest remainder, exact integers).

    Rounding every class on its own can overshoot: two classes of 23 rows and a total of 23 round 11.5 up
    twice and take 24. Here the counts always add up to ``total`` and each is within one row of its share.
    """
    rows = sum(sizes)
    if rows == 0:
        return [0 for _ in sizes]
    counts = [size * total // rows for size in sizes]
    remainders = [size * total % rows for size in sizes]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _stratified_take(
    frame: pd.DataFrame, total: int, rng: np.random.Generator, keep_both_sides: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into (taken, rest): ``total`` rows taken, every label class in proportion.

    With ``keep_both_sides`` every class of two or more rows keeps at least one row on each side (a split
    should see every label), which can move the total by a row for a tiny class; without it (sampling for
    ``data.limit``) exactly ``total`` rows are taken.
    """
    taken_index: list[int] = []
    groups = [group for _, group in frame.groupby(_stratum(frame), sort=True)]
    counts = _class_counts([len(group) for group in groups], total)
    for group, count in zip(groups, counts):
        if keep_both_sides and len(group) >= 2:
            count = min(max(count, 1), len(group) - 1)
        taken_index.extend(rng.permutation(group.index.to_numpy())[:count].tolist())
    taken = frame.loc[sorted(taken_index)]
    rest = frame.drop(index=taken.index)
    return taken, rest


def _shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def _select(frame: pd.DataFrame, data_config: DataConfig, limit: int | None, rng: np.random.Generator) -> pd.DataFrame:
    """Rows after the length filter and the stratified ``limit`` sample."""
    selected = frame.reset_index(drop=True)
    if data_config.max_review_chars is not None:
        lengths = selected[TEXT_COLUMN].map(lambda text: len(text) if isinstance(text, str) else 0)
        selected = selected[lengths <= data_config.max_review_chars].reset_index(drop=True)
    if limit is not None and limit < len(selected):
        selected, _ = _stratified_take(selected, limit, rng, keep_both_sides=False)
    return selected.reset_index(drop=True)


# The two labels of the raw contract: every split must hold reviews of both.
LABELS = (0, 1)


def _refuse_too_few_rows(frame: pd.DataFrame, splits: int, where: str) -> None:
    """A :class:`DataSourceError` when ``frame`` is too small for ``splits`` splits that each hold a review of
    each label: otherwise a split with one label only fails the raw contract as a skewed label mean, which
    blames the data's balance rather than its size. Labels other than 0 and 1 are the contract's to report."""
    labels = pd.to_numeric(frame[LABEL_COLUMN].astype(object), errors="coerce")
    counts = {label: int((labels == label).sum()) for label in LABELS}
    if all(count >= splits for count in counts.values()) or (0 in counts.values() and len(frame) >= 2 * splits):
        return
    raise DataSourceError(
        f"{where} has {len(frame)} row(s) after filtering and sampling ({', '.join(f'label {k}: {v}' for k, v in counts.items())}), "
        f"too few for the splits: each of the {splits} split(s) drawn from it needs a review of each label, so "
        f"at least {splits} rows of each label ({splits * len(LABELS)} in all; far more for a useful model) are needed; "
        "use a larger file or a larger data.limit"
    )


def split_source(source: SourceData, data_config: DataConfig, seed: int) -> dict[str, pd.DataFrame]:
    """Seeded, stratified splits. The source's own test split is kept as the test split when it has one."""
    rng = np.random.default_rng(seed)
    if source.test is not None:
        # limit counts all rows; give the test pool its configured share of it.
        train_limit = test_limit = None
        if data_config.limit is not None:
            test_limit = max(1, int(round(data_config.limit * data_config.test_fraction)))
            train_limit = data_config.limit - test_limit
        pool = _select(source.train, data_config, train_limit, rng)
        test = _select(source.test, data_config, test_limit, rng)
        # The pool feeds train and validation: each needs a review of each label.
        _refuse_too_few_rows(pool, 2, f"data source {source.spec!r} (its training part)")
    else:
        everything = _select(source.train, data_config, data_config.limit, rng)
        _refuse_too_few_rows(everything, len(SPLITS), f"data source {source.spec!r}")
        test, pool = _stratified_take(everything, round(len(everything) * data_config.test_fraction), rng)
    validation, train = _stratified_take(pool, round(len(pool) * data_config.validation_fraction), rng)
    splits = {"train": _shuffled(train, rng), "validation": _shuffled(validation, rng), "test": _shuffled(test, rng)}
    empty = [name for name, frame in splits.items() if frame.empty]
    if empty:
        counts = {name: len(frame) for name, frame in splits.items()}
        raise DataSourceError(
            f"data source {source.spec!r} leaves split(s) {empty} empty after filtering and splitting "
            f"(rows per split: {counts}); use more rows or a larger data.limit"
        )
    return splits


def with_extra_training_rows(splits: dict[str, pd.DataFrame], extra: SourceData, seed: int) -> dict[str, pd.DataFrame]:
    """``splits`` with every row of ``extra`` (its test part too) added to the train split only, reshuffled
    (seeded); validation and test are left exactly as they were."""
    rows = [frame for frame in (extra.train, extra.test) if frame is not None]
    train = pd.concat([splits["train"], *rows], ignore_index=True)
    return {**splits, "train": _shuffled(train, np.random.default_rng(seed))}


def dataset_dir_of(artifacts_dir: str | Path, dataset_digest: str) -> Path:
    """Where :func:`write_splits` keeps the splits whose combined digest is ``dataset_digest``."""
    return Path(artifacts_dir) / "datasets" / dataset_digest[:16]


def write_splits(splits: dict[str, pd.DataFrame], source: SourceData, data_config: DataConfig, seed: int, artifacts_dir: Path) -> SplitFiles:
    """Write the splits as Parquet under a folder named by their combined content digest."""
    digests = {name: content_digest(frame) for name, frame in splits.items()}
    # Named by SplitFiles.digest, the one digest for the three splits that later steps key their files on.
    combined = combined_digest(digests, SPLITS)
    dataset_dir = dataset_dir_of(artifacts_dir, combined)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: dataset_dir / f"{name}.parquet" for name in SPLITS}
    for name, frame in splits.items():
        # Write to a temporary name first so an interrupted run never leaves a truncated split behind; the
        # name is this writer's own, so two runs writing the same split do not write into one file.
        partial = partial_path(paths[name])
        frame.to_parquet(partial, index=False)
        partial.replace(paths[name])
    split_files = SplitFiles(
        source=source.spec,
        dataset_dir=dataset_dir,
        train_path=paths["train"],
        validation_path=paths["validation"],
        test_path=paths["test"],
        digests=digests,
        rows={name: len(frame) for name, frame in splits.items()},
        test_from_source=source.test is not None,
    )
    manifest = {**asdict(split_files), "seed": seed, "data_config": asdict(data_config)}
    write_text_atomically(dataset_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return split_files


def read_split(split_files: SplitFiles, split: str) -> pd.DataFrame:
    return pd.read_parquet(split_files.path_of(split))
