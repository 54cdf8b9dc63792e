"""Tokenisation and padding: adapt a TextVectorization on the training split only, then pad every split.

Outputs are files (vocabulary, padded id arrays, a manifest) in a folder named by the inputs' digests and the
tokenisation settings, so later tasks and reruns reuse them and pass only paths and digests around.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqflow.config import TokenisationConfig
from seqflow.datasets import SPLITS, SplitFiles, read_split
from seqflow.sources import LABEL_COLUMN, TEXT_COLUMN

logger = logging.getLogger(__name__)

# Reviews vectorised per TensorFlow call: bounds memory on 25k-review splits without slowing it down.
VECTORISE_BATCH_SIZE = 2_048


@dataclass(frozen=True)
class TokenisedData:
    """Padded arrays and vocabulary on disk, and what identifies them."""

    tokenised_dir: Path
    vocabulary_path: Path
    arrays_path: Path
    dataset_digest: str
    split_digests: dict[str, str]
    array_digest: str
    vocab_size: int
    max_length: int
    padding: str
    truncation: str
    rows: dict[str, int]
    # Share of non-padding ids that are the out-of-vocabulary id, per split.
    oov_rate: dict[str, float]


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    hasher = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        hasher.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def load_arrays(tokenised: TokenisedData) -> dict[str, np.ndarray]:
    """``{"x_train", "y_train", "x_validation", ...}`` from the saved ``.npz``."""
    with np.load(tokenised.arrays_path) as stored:
        return {name: stored[name] for name in stored.files}


def load_vocabulary(vocabulary_path: Path) -> list[str]:
    # One token per line; the first line is the empty padding token.
    return vocabulary_path.read_text(encoding="utf-8").split("\n")


def pad_and_tokenise(split_files: SplitFiles, tokenisation: TokenisationConfig, artifacts_dir: Path) -> TokenisedData:
    """Adapt the vectoriser on train, then write padded ``(rows, max_length)`` int32 ids for every split."""
    # Imported here: Keras/TensorFlow take seconds to import and the CLI's --help should not wait for them.
    import tensorflow as tf

    from seqflow.models.text import OOV_ID, PADDING_ID, PadAndTruncate, build_vectoriser

    settings_key = json.dumps(dataclasses.asdict(tokenisation), sort_keys=True)
    folder_key = hashlib.sha256(f"{split_files.digest}|{settings_key}".encode()).hexdigest()[:16]
    tokenised_dir = Path(artifacts_dir) / "tokenised" / folder_key
    tokenised_dir.mkdir(parents=True, exist_ok=True)

    frames = {split: read_split(split_files, split) for split in SPLITS}
    vectoriser = build_vectoriser(tokenisation.vocab_size)
    logger.info("adapting the vocabulary on %d training reviews", len(frames["train"]))
    vectoriser.adapt(
        tf.data.Dataset.from_tensor_slices(frames["train"][TEXT_COLUMN].tolist()).batch(VECTORISE_BATCH_SIZE)
    )
    vocabulary = [str(token) for token in vectoriser.get_vocabulary()]
    pad = PadAndTruncate(tokenisation.max_length, tokenisation.padding, tokenisation.truncation)

    arrays: dict[str, np.ndarray] = {}
    oov_rate: dict[str, float] = {}
    for split, frame in frames.items():
        texts = frame[TEXT_COLUMN].tolist()
        chunks = [
            pad(vectoriser(tf.constant(texts[start : start + VECTORISE_BATCH_SIZE]))).numpy()
            for start in range(0, len(texts), VECTORISE_BATCH_SIZE)
        ]
        ids = np.concatenate(chunks).astype(np.int32) if chunks else np.zeros((0, tokenisation.max_length), np.int32)
        arrays[f"x_{split}"] = ids
        arrays[f"y_{split}"] = frame[LABEL_COLUMN].to_numpy().astype(np.int32)
        real_tokens = int((ids != PADDING_ID).sum())
        oov_rate[split] = float((ids == OOV_ID).sum() / real_tokens) if real_tokens else 1.0

    vocabulary_path = tokenised_dir / "vocabulary.txt"
    vocabulary_path.write_text("\n".join(vocabulary), encoding="utf-8")
    arrays_path = tokenised_dir / "arrays.npz"
    partial = tokenised_dir / "arrays.partial.npz"
    np.savez(partial, **arrays)
    partial.replace(arrays_path)

    tokenised = TokenisedData(
        tokenised_dir=tokenised_dir,
        vocabulary_path=vocabulary_path,
        arrays_path=arrays_path,
        dataset_digest=split_files.digest,
        split_digests=dict(split_files.digests),
        array_digest=arrays_digest(arrays),
        vocab_size=len(vocabulary),
        max_length=tokenisation.max_length,
        padding=tokenisation.padding,
        truncation=tokenisation.truncation,
        rows={split: int(arrays[f"x_{split}"].shape[0]) for split in SPLITS},
        oov_rate=oov_rate,
    )
    (tokenised_dir / "manifest.json").write_text(json.dumps(dataclasses.asdict(tokenised), indent=2, default=str))
    logger.info("vocabulary of %d tokens; OOV rate %s", len(vocabulary), {k: round(v, 4) for k, v in oov_rate.items()})
    return tokenised
