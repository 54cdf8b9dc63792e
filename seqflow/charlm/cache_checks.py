"""What the character-model tasks' cache declarations (:mod:`seqflow.tasks.charlm`) read that is particular to
this pipeline: the source's content as a key input, and checks that stored text splits and character ids are
still on disk unchanged (also run by ``seqflow charlm rerun`` before it starts). The cache policy itself is
:mod:`seqflow.core.caching`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqflow.charlm.sources import embedded_play_paths, parse_char_source_spec
from seqflow.charlm.text import CHAR_SPLITS, char_ids_digest, load_char_ids, read_char_split, text_digest
from seqflow.core.caching import file_digest, splits_problem

if TYPE_CHECKING:
    from seqflow.charlm.config import CharDataConfig


def char_source_fingerprint(data_config: CharDataConfig) -> str:
    """What the load-text task reads, by content: the embedded plays it reads or the text file.

    ``tfds:`` datasets are versioned and immutable, so their spec (in the config slice) names them.
    """
    kind, argument = parse_char_source_spec(data_config.source)
    if kind == "embedded":
        plays = embedded_play_paths()
        wanted = [name.strip() for name in argument.split(",") if name.strip()] or list(plays)
        # An unknown play: the task reports it properly; the key just cannot match an earlier one.
        return hashlib.sha256(
            "\n".join(f"{name}={file_digest(plays[name]) if name in plays else 'missing'}" for name in wanted).encode()
        ).hexdigest()
    if kind == "tfds":
        return f"tfds:{argument}"
    path = Path(argument)
    return file_digest(path) if path.is_file() else f"missing:{path}"


def char_split_files_problem(split_files: Any) -> str | None:
    """Why these character split files cannot be used (gone or changed on disk), or None."""
    return splits_problem(split_files, CHAR_SPLITS, lambda split: text_digest(read_char_split(split_files, split)))


def char_encoded_problem(encoded: Any) -> str | None:
    """Why these character ids and vocabulary cannot be used (gone or changed on disk), or None."""
    for path in (encoded.vocabulary_path, *(encoded.ids_path_of(split) for split in CHAR_SPLITS)):
        if not Path(path).is_file():
            return f"{path} is gone"
    if char_ids_digest({split: load_char_ids(encoded, split) for split in CHAR_SPLITS}) != encoded.ids_digest:
        return f"character ids in {encoded.encoded_dir} changed on disk"
    return None
