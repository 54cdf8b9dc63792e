"""What names a pipeline's data splits on disk, the same for every pipeline: one digest for all its splits
together (the dataset digest the caches and the registry compare) and the tags that name the data on its runs.

Plain Python on purpose: the records both pipelines' steps return import it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence


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
