"""Character text on disk: seeded train/validation split by contiguous blocks, then character ids.

Like :mod:`seqflow.sentiment.datasets` and :mod:`seqflow.sentiment.tokenise`, each step writes files into a folder named by the
digest of its inputs (content + settings) and returns a small frozen record of paths and digests, so a task
can run in another process, and a cache keyed on those digests can skip a step whose inputs did not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from seqflow.charlm.sources import CharSource
from seqflow.charlm.config import CharDataConfig
from seqflow.core.errors import DataSourceError
from seqflow.core.splits import SplitFilesOnDisk, combined_digest

logger = logging.getLogger(__name__)

CHAR_SPLITS = ("train", "validation")
# Id 0 stands for any character that is not in the training vocabulary (validation text, generation prefixes).
UNKNOWN_ID = 0
UNKNOWN_CHAR = "\ufffd"
# A training alphabet above this many distinct characters is a large one (CJK: thousands; alphabetic scripts,
# punctuation and digits together stay under ~200): only there are rare characters folded into the unknown id
# by default (see resolve_min_char_count).
LARGE_ALPHABET = 300
# The default minimum count in a large alphabet: characters seen once in training become the unknown id.
LARGE_ALPHABET_MIN_CHAR_COUNT = 2


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CharSplitFiles(SplitFilesOnDisk):
    """Train and validation text as UTF-8 files, what identifies their content, and their size in characters
    and blocks."""

    splits: ClassVar[tuple[str, ...]] = CHAR_SPLITS

    chars: dict[str, int]
    blocks: dict[str, int]

    def progress_note(self) -> str:
        """One line for the run's progress: the characters of each split."""
        return ", ".join(f"{split} {n:,} characters" for split, n in self.chars.items())


def split_blocks(text: str, data_config: CharDataConfig, seed: int) -> dict[str, str]:
    """Cut ``text`` into contiguous blocks of ``block_chars``; a seeded draw of ``validation_fraction`` of them
    (at least one) is validation, the rest train; each split keeps its blocks in text order. With
    ``validation_split="tail"`` the last ``validation_fraction`` of the text is validation instead."""
    if data_config.validation_split == "tail":
        held_out = round(len(text) * data_config.validation_fraction)
        if held_out < 1 or held_out >= len(text):
            raise DataSourceError(f"text source has {len(text):,} characters: too few to hold out its last "
                                  f"{data_config.validation_fraction:.0%}; use a longer text")
        return {"train": text[:-held_out], "validation": text[-held_out:]}
    block = data_config.block_chars
    starts = list(range(0, len(text), block))
    if len(starts) < 2:
        raise DataSourceError(
            f"text source has {len(text):,} characters: fewer than two blocks of data.block_chars={block:,}, "
            "so train and validation cannot both get text; use a longer text or a smaller data.block_chars"
        )
    rng = np.random.default_rng(seed)
    n_validation = min(len(starts) - 1, max(1, round(len(starts) * data_config.validation_fraction)))
    validation_blocks = set(rng.choice(len(starts), size=n_validation, replace=False).tolist())
    parts: dict[str, list[str]] = {split: [] for split in CHAR_SPLITS}
    for index, start in enumerate(starts):
        parts["validation" if index in validation_blocks else "train"].append(text[start : start + block])
    return {split: "".join(chunks) for split, chunks in parts.items()}


def write_char_splits(source: CharSource, data_config: CharDataConfig, seed: int, artifacts_dir: Path) -> CharSplitFiles:
    """Split ``source`` and write both splits as UTF-8 files under a folder named by their content digest."""
    splits = split_blocks(source.text, data_config, seed)
    digests = {split: text_digest(text) for split, text in splits.items()}
    combined = combined_digest(digests, CHAR_SPLITS)
    dataset_dir = Path(artifacts_dir) / "char_datasets" / combined[:16]
    dataset_dir.mkdir(parents=True, exist_ok=True)
    paths = {split: dataset_dir / f"{split}.txt" for split in CHAR_SPLITS}
    for split, text in splits.items():
        # Write to a temporary name first so an interrupted run never leaves a truncated split behind.
        partial = paths[split].with_suffix(".txt.partial")
        partial.write_text(text, encoding="utf-8", newline="")
        partial.replace(paths[split])
    split_files = CharSplitFiles(
        source=source.spec, dataset_dir=dataset_dir, train_path=paths["train"], validation_path=paths["validation"],
        digests=digests,
        chars={split: len(text) for split, text in splits.items()},
        blocks={split: -(-len(text) // data_config.block_chars) for split, text in splits.items()},
    )
    manifest = {**dataclasses.asdict(split_files), "seed": seed, "data_config": dataclasses.asdict(data_config)}
    (dataset_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    logger.info("text split into %s characters", {k: f"{v:,}" for k, v in split_files.chars.items()})
    return split_files


def read_char_split(split_files: CharSplitFiles, split: str) -> str:
    """A split's text. Undecodable bytes (a file changed on disk) become lone surrogates, which the
    character contract reports, instead of a UnicodeDecodeError here."""
    return split_files.path_of(split).read_bytes().decode("utf-8", errors="surrogateescape")


@dataclass(frozen=True)
class CharEncodedData:
    """Character ids of both splits and the vocabulary, on disk, and what identifies them."""

    encoded_dir: Path
    vocabulary_path: Path
    train_ids_path: Path
    validation_ids_path: Path
    dataset_digest: str
    ids_digest: str
    # Including the unknown id 0.
    vocab_size: int
    # Share of validation characters not in the training vocabulary (encoded as the unknown id).
    unseen_share: float
    # Characters seen fewer times than this in training were encoded as the unknown id (1: none were).
    min_char_count: int = 1

    def ids_path_of(self, split: str) -> Path:
        return {"train": self.train_ids_path, "validation": self.validation_ids_path}[split]

    def progress_note(self) -> str:
        """One line for the run's progress: the vocabulary and the validation characters it lacks."""
        return f"{self.vocab_size} character ids, {self.unseen_share:.2%} of validation characters unseen in training"


def resolve_min_char_count(train_text: str, min_char_count: int | None) -> int:
    """The minimum count a training character needs to get its own id: ``min_char_count`` if given, else
    :data:`LARGE_ALPHABET_MIN_CHAR_COUNT` for an alphabet over :data:`LARGE_ALPHABET` characters and 1 otherwise.

    Why characters seen once: by Good-Turing, the share of training characters that are seen once estimates the
    share of new text made of characters never seen. Folding them into the unknown id gives that id about the
    right probability, so a validation or generated character outside the vocabulary costs what it should
    instead of the untrained id's near-zero probability (what made a 2.5k-character Chinese corpus score worse
    than a unigram). English alphabets keep every character (and their vocabularies stay as they were).
    """
    if min_char_count is not None:
        return min_char_count
    return LARGE_ALPHABET_MIN_CHAR_COUNT if len(set(train_text)) > LARGE_ALPHABET else 1


def build_vocabulary(train_text: str, min_char_count: int = 1) -> list[str]:
    """Id -> character: the unknown marker first, then every training character seen at least
    ``min_char_count`` times, in code-point order (rarer ones are read as the unknown id)."""
    counts = Counter(train_text)
    kept = {char for char, count in counts.items() if count >= min_char_count}
    return [UNKNOWN_CHAR, *sorted(kept - {UNKNOWN_CHAR})]


def encode(text: str, vocabulary: list[str]) -> np.ndarray:
    """Character ids (int32); characters outside ``vocabulary`` become :data:`UNKNOWN_ID`."""
    index = {char: i for i, char in enumerate(vocabulary)}
    return np.fromiter((index.get(char, UNKNOWN_ID) for char in text), dtype=np.int32, count=len(text))


def load_char_vocabulary(vocabulary_path: Path) -> list[str]:
    # JSON, not one character per line: the vocabulary contains the newline character itself.
    return json.loads(Path(vocabulary_path).read_text(encoding="utf-8"))


def load_char_ids(encoded: CharEncodedData, split: str) -> np.ndarray:
    return np.load(encoded.ids_path_of(split))


def char_ids_digest(ids: dict[str, np.ndarray]) -> str:
    """One digest of both splits' character ids (what a cache checks them against on disk)."""
    hasher = hashlib.sha256()
    for split in CHAR_SPLITS:
        hasher.update(f"{split}:".encode() + ids[split].tobytes())
    return hasher.hexdigest()


def encode_char_splits(split_files: CharSplitFiles, artifacts_dir: Path, min_char_count: int | None = None) -> CharEncodedData:
    """Vocabulary from the training text only (characters rarer than ``min_char_count``, see
    :func:`resolve_min_char_count`, read as the unknown id); both splits as int32 ids in a digest-named folder."""
    texts = {split: read_char_split(split_files, split) for split in CHAR_SPLITS}
    min_count = resolve_min_char_count(texts["train"], min_char_count)
    # The folder of a vocabulary without folding keeps its earlier name, so earlier caches stay valid.
    folder = split_files.digest[:16] + (f"-min{min_count}" if min_count > 1 else "")
    encoded_dir = Path(artifacts_dir) / "char_encoded" / folder
    encoded_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = build_vocabulary(texts["train"], min_count)
    ids = {split: encode(text, vocabulary) for split, text in texts.items()}
    vocabulary_path = encoded_dir / "vocabulary.json"
    vocabulary_path.write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    paths = {split: encoded_dir / f"{split}_ids.npy" for split in CHAR_SPLITS}
    for split in CHAR_SPLITS:
        partial = encoded_dir / f"{split}_ids.partial.npy"
        np.save(partial, ids[split])
        partial.replace(paths[split])
    validation = ids["validation"]
    encoded = CharEncodedData(
        encoded_dir=encoded_dir,
        vocabulary_path=vocabulary_path,
        train_ids_path=paths["train"],
        validation_ids_path=paths["validation"],
        dataset_digest=split_files.digest,
        ids_digest=char_ids_digest(ids),
        vocab_size=len(vocabulary),
        unseen_share=float((validation == UNKNOWN_ID).mean()) if len(validation) else 0.0,
        min_char_count=min_count,
    )
    (encoded_dir / "manifest.json").write_text(json.dumps(dataclasses.asdict(encoded), indent=2, default=str))
    logger.info("character vocabulary of %d (characters seen fewer than %d times read as unknown); %.3f%% of "
                "validation characters are unknown", encoded.vocab_size, min_count, 100 * encoded.unseen_share)
    return encoded
