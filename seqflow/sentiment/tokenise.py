"""Tokenisation and padding: adapt a TextVectorization on the training split only, then pad every split.

Outputs are files (vocabulary, padded id arrays, a manifest) in a folder named by the inputs' digests and the
tokenisation settings, so later tasks and reruns reuse them and pass only paths and digests around.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqflow.core.files import partial_path, write_text_atomically
from seqflow.sentiment.config import TokenisationConfig
from seqflow.sentiment.datasets import SPLITS, SplitFiles, read_split
from seqflow.core.errors import DataSourceError
from seqflow.sentiment.sources import LABEL_COLUMN, TEXT_COLUMN

logger = logging.getLogger(__name__)

# Reviews vectorised per TensorFlow call: bounds memory on 25k-review splits without slowing it down.
VECTORISE_BATCH_SIZE = 2_048
# Written last into every tokenised folder; records what the files in it should hold.
MANIFEST_NAME = "manifest.json"


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

    def progress_note(self) -> str:
        """One line for the run's progress: the vocabulary, the length and the training split's OOV rate."""
        return f"vocabulary {self.vocab_size:,}, {self.max_length} ids per review, OOV {self.oov_rate.get('train', 0):.1%} (train)"


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    hasher = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        hasher.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def _rerun_hint(tokenised_dir: Path) -> str:
    return f"delete {str(tokenised_dir)!r} and run `seqflow validate` (or `seqflow run`) again to tokenise anew"


def load_arrays(tokenised: TokenisedData) -> dict[str, np.ndarray]:
    """``{"x_train", "y_train", "x_validation", ...}`` from the saved ``.npz``, checked against its digest.

    A missing, truncated or replaced file is a :class:`DataSourceError` naming it, not a zip or NumPy error.
    """
    path = Path(tokenised.arrays_path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise DataSourceError(
            f"tokenised arrays {str(path)!r} are missing; {_rerun_hint(tokenised.tokenised_dir)}"
        ) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataSourceError(
            f"tokenised arrays {str(path)!r} cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
            f"{_rerun_hint(tokenised.tokenised_dir)}"
        ) from None
    if arrays_digest(arrays) != tokenised.array_digest:
        raise DataSourceError(
            f"tokenised arrays {str(path)!r} do not match the digest recorded when they were written "
            f"({tokenised.array_digest[:12]}...); the file was changed or replaced. {_rerun_hint(tokenised.tokenised_dir)}"
        )
    return arrays


def load_vocabulary(vocabulary_path: Path) -> list[str]:
    """The vocabulary, one token per line; the first line is the empty padding token.

    When the tokenisation manifest sits next to it, the token count must match the one recorded there: a
    truncated vocabulary would silently map the missing words to the out-of-vocabulary id in the served model.
    """
    vocabulary_path = Path(vocabulary_path)
    try:
        vocabulary = vocabulary_path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise DataSourceError(f"vocabulary {str(vocabulary_path)!r} is missing; {_rerun_hint(vocabulary_path.parent)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(
            f"vocabulary {str(vocabulary_path)!r} cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
            f"{_rerun_hint(vocabulary_path.parent)}"
        ) from None
    problem = None
    manifest_path = vocabulary_path.parent / MANIFEST_NAME
    if vocabulary[0] != "":
        problem = f"its first line is {vocabulary[0][:40]!r}, not the empty padding token"
    elif len(set(vocabulary)) != len(vocabulary):
        problem = "it repeats tokens"
    elif manifest_path.is_file():
        try:
            expected = json.loads(manifest_path.read_text(encoding="utf-8"))["vocab_size"]
        except (OSError, ValueError, KeyError, TypeError):
            expected = None  # the manifest is only a cross-check; the vocabulary itself is what is used
        if expected is not None and expected != len(vocabulary):
            problem = f"it has {len(vocabulary)} tokens but {str(manifest_path)!r} records {expected}"
    if problem:
        raise DataSourceError(
            f"vocabulary {str(vocabulary_path)!r} is damaged: {problem}; {_rerun_hint(vocabulary_path.parent)}"
        )
    return vocabulary


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _label_ids(frame, split_path: Path) -> np.ndarray:  # noqa: ANN001 - a DataFrame with a label column
    """Labels as int32. The raw contract has checked they are 0 or 1; anything else is refused, not cast."""
    labels = pd.to_numeric(frame[LABEL_COLUMN].astype(object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        examples = frame[LABEL_COLUMN][bad].head(5).tolist()
        raise DataSourceError(
            f"split {str(split_path)!r} has {int(bad.sum())} label(s) other than 0 or 1, e.g. {examples}; "
            "check the data with the raw contract (`seqflow validate`) before tokenising"
        )
    return labels.astype(np.int32)


def pad_and_tokenise(split_files: SplitFiles, tokenisation: TokenisationConfig, artifacts_dir: Path) -> TokenisedData:
    """Adapt the vectoriser on train, then write padded ``(rows, max_length)`` int32 ids for every split."""
    # Imported here: Keras/TensorFlow take seconds to import and the CLI's --help should not wait for them.
    import tensorflow as tf

    from seqflow.models.text import OOV_ID, PADDING_ID, PadAndTruncate, build_vectoriser, standardise_review_unicode

    settings_key = json.dumps(dataclasses.asdict(tokenisation), sort_keys=True)
    # The standardiser decides the vocabulary: arrays of another standardiser never share (or overwrite) a folder.
    standardiser = standardise_review_unicode.__name__
    folder_key = hashlib.sha256(f"{split_files.digest}|{settings_key}|{standardiser}".encode()).hexdigest()[:16]
    tokenised_dir = Path(artifacts_dir) / "tokenised" / folder_key
    tokenised_dir.mkdir(parents=True, exist_ok=True)

    frames = {split: read_split(split_files, split) for split in SPLITS}
    vectoriser = build_vectoriser(tokenisation.vocab_size, standardise=standardise_review_unicode)
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
        arrays[f"y_{split}"] = _label_ids(frame, split_files.path_of(split))
        real_tokens = int((ids != PADDING_ID).sum())
        oov_rate[split] = float((ids == OOV_ID).sum() / real_tokens) if real_tokens else 1.0

    vocabulary_path = tokenised_dir / "vocabulary.txt"
    write_text_atomically(vocabulary_path, "\n".join(vocabulary))
    arrays_path = tokenised_dir / "arrays.npz"
    partial = partial_path(arrays_path)
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
    write_text_atomically(tokenised_dir / MANIFEST_NAME, json.dumps(dataclasses.asdict(tokenised), indent=2, default=str))
    logger.info("vocabulary of %d tokens; OOV rate %s", len(vocabulary), {k: round(v, 4) for k, v in oov_rate.items()})
    return tokenised
