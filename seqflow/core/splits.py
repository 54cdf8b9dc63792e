"""What names a pipeline's data splits on disk, the same for every pipeline: one digest for all its splits
together (the dataset digest the caches and the registry compare) and the tags that name the data on its runs.

Plain Python on purpose: the records both pipelines' steps return import it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence


def combined_digest(digests: dict[str, str], splits: Sequence[str]) -> str:
    """One digest for the content digests of ``splits`` (in that order) together."""
    return hashlib.sha256("|".join(f"{split}={digests[split]}" for split in splits).encode()).hexdigest()


def split_tags(split_files: Any, splits: Sequence[str]) -> dict[str, str]:
    """The tags naming a pipeline's split files (``source``, ``digest``, ``digests``) on its runs: the source, the
    dataset digest and one ``<split>_digest`` for each of ``splits``."""
    return {
        "source": split_files.source,
        "dataset_digest": split_files.digest,
        **{f"{split}_digest": split_files.digests[split] for split in splits},
    }


@dataclass(frozen=True)
class SplitFilesOnDisk:
    """A pipeline's split files and what identifies their content: the source, the folder, each split's file
    (a ``<split>_path`` field per name in ``splits``) and content digest. Each pipeline adds its own counts."""

    # The pipeline's splits, in order.
    splits: ClassVar[tuple[str, ...]] = ("train", "validation")

    source: str
    dataset_dir: Path
    train_path: Path
    validation_path: Path
    digests: dict[str, str]

    def path_of(self, split: str) -> Path:
        if split not in self.splits:
            raise KeyError(split)
        return getattr(self, f"{split}_path")

    @property
    def digest(self) -> str:
        """One digest for all the splits together."""
        return combined_digest(self.digests, self.splits)
