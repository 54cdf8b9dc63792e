"""Files and folders that appear whole or not at all, even when two processes write the same ones at once.

Two ``seqflow run`` with the same data and seed write the very same split, tokenised and contract files. A
fixed temporary name (``train.parquet.partial``) would let both write into one file at once; here every writer
has its own temporary name and the finished file or folder replaces the old one by a rename.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

# A folder being replaced is retried this often when another process replaces it at the same moment.
PUBLISH_ATTEMPTS = 5


def partial_path(path: Path) -> Path:
    """A temporary name next to ``path``, unique to this writer, with the same suffix (np.savez needs .npz)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{path.suffix}")


def write_text_atomically(path: Path, text: str) -> None:
    partial = partial_path(path)
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def publish_directory(built_dir: Path, target_dir: Path) -> None:
    """Replace ``target_dir`` (if any) by the finished ``built_dir``: two renames, never a half-written folder.

    If another process publishes the same folder between our two renames, ours is retried; the folder that
    ends up in place is always one complete copy.
    """
    built_dir, target_dir = Path(built_dir), Path(target_dir)
    for _ in range(PUBLISH_ATTEMPTS):
        old_dir = None
        if target_dir.exists():
            old_dir = target_dir.with_name(f".{target_dir.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
            try:
                target_dir.rename(old_dir)
            except FileNotFoundError:
                old_dir = None  # another process moved it away first
        try:
            built_dir.rename(target_dir)
        except OSError:
            # Another process put its copy in place between our two renames: move that one aside and retry.
            if old_dir is not None:
                shutil.rmtree(old_dir, ignore_errors=True)
            continue
        if old_dir is not None:
            shutil.rmtree(old_dir, ignore_errors=True)
        return
    shutil.rmtree(built_dir, ignore_errors=True)
    raise OSError(f"could not replace {str(target_dir)!r}: other processes kept replacing it")
