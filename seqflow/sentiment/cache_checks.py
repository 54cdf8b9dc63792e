"""What the sentiment tasks' cache declarations (:mod:`seqflow.tasks.sentiment`) read that is particular to
this pipeline: the source's content as a key input, and checks that stored split files and tokenised arrays are
still on disk unchanged (also run by ``seqflow rerun`` before it starts). The cache policy itself is
:mod:`seqflow.core.caching`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqflow.core.caching import file_digest, splits_problem, tree_digest
from seqflow.sentiment.datasets import SPLITS, content_digest, read_split
from seqflow.sentiment.sources import embedded_csv_path, parse_source_spec
from seqflow.sentiment.tokenise import arrays_digest, load_arrays

if TYPE_CHECKING:
    from seqflow.sentiment.config import DataConfig


def source_fingerprint(data_config: DataConfig) -> str:
    """What the download task reads, by content: the file (or folder) behind the source spec.

    ``tfds:`` datasets are versioned and immutable, so their spec and folders (in the config slice) name them.
    """
    kind, argument = parse_source_spec(data_config.source)
    if kind == "embedded":
        return file_digest(embedded_csv_path())
    if kind == "tfds":
        return f"tfds:{argument}"
    path = Path(argument)
    if path.is_dir():
        return tree_digest(path)
    if path.is_file():
        return file_digest(path)
    # Missing: the download task reports it properly; the key just cannot match an earlier one.
    return f"missing:{path}"


def split_files_problem(split_files: Any) -> str | None:
    """Why these split files cannot be used (gone or changed on disk), or None."""
    return splits_problem(split_files, SPLITS, lambda split: content_digest(read_split(split_files, split)))


def tokenised_problem(tokenised: Any) -> str | None:
    """Why these tokenised arrays cannot be used (gone or changed on disk), or None."""
    for path in (tokenised.arrays_path, tokenised.vocabulary_path):
        if not Path(path).is_file():
            return f"{path} is gone"
    if arrays_digest(load_arrays(tokenised)) != tokenised.array_digest:
        return f"{tokenised.arrays_path} changed on disk"
    return None
