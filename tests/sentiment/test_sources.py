"""Data sources: csv / parquet / aclImdb folder and archive / tfds:imdb_reviews / embedded.

Every input is built in the test (tmp_path) except the embedded package data; nothing touches the network.
"""

from __future__ import annotations

import io
import random
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from seqflow.sentiment import sources
from seqflow.sentiment.config import DataConfig
from seqflow.core.errors import DataSourceError
from seqflow.sentiment.sources import ACLIMDB_ARCHIVE_NAME, load_source, parse_source_spec


def load(spec: str, **data) -> sources.SourceData:
    return load_source(DataConfig(source=spec, **data))


# --- csv / parquet ---------------------------------------------------------------------------------------

ROWS = pd.DataFrame(
    {
        "text": ["A fine film, with a twist.", "Dull.", "Ünïcödé and \"quotes\", commas\nand a newline", "123"],
        "label": [1, 0, 1, 0],
    }
)


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _refusal(spec: str) -> str:
    """The one-line DataSourceError message the source ``spec`` is refused with."""
    with pytest.raises(DataSourceError) as info:
        load(spec)
    return str(info.value)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_table_source_loads_text_and_label(tmp_path: Path, kind: str) -> None:
    extra = ROWS.assign(rating=[9, 2, 8, 3])  # extra columns are dropped
    path = write_table(extra, tmp_path / f"reviews.{kind}")

    data = load(f"{kind}:{path}")

    assert data.spec == f"{kind}:{path}"
    assert data.test is None
    assert list(data.train.columns) == ["text", "label"]
    assert data.train["text"].tolist() == ROWS["text"].tolist()  # "123" stays text, not a number
    assert data.train["label"].tolist() == [1, 0, 1, 0]
    assert pd.api.types.is_integer_dtype(data.train["label"])


def test_spec_kind_is_case_insensitive(tmp_path: Path) -> None:
    path = write_table(ROWS, tmp_path / "reviews.csv")
    assert parse_source_spec(f"CSV:{path}") == ("csv", str(path))
    assert len(load(f"CSV:{path}").train) == len(ROWS)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"nowhere.{kind}"
    with pytest.raises(DataSourceError, match="does not exist") as info:
        load(f"{kind}:{path}")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_column_names_file_missing_column_and_columns_found(tmp_path: Path, kind: str) -> None:
    path = write_table(ROWS.rename(columns={"label": "sentiment"}), tmp_path / f"reviews.{kind}")
    message = _refusal(f"{kind}:{path}")
    assert str(path) in message
    assert "lacks column(s) ['label']" in message
    assert "it has ['text', 'sentiment']" in message


def test_non_utf8_csv_names_file_and_utf8_and_the_real_position(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    body = "text,label\n" + "a good review,1\n" * 3000  # past pandas' first read buffer
    raw = body.encode("utf-8") + "très mauvais,0\n".encode("latin-1")
    path.write_bytes(raw)
    message = _refusal(f"csv:{path}")
    assert str(path) in message
    assert "not valid UTF-8" in message
    assert "re-save it as UTF-8" in message
    # The offset is the file's (pandas alone reports one inside its buffer).
    bad_byte = raw.index("è".encode("latin-1"))
    assert f"byte {bad_byte}, line 3002" in message


def test_utf8_csv_with_byte_order_mark_reads_its_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,label\nfine,1\n".encode("utf-8"))
    assert load(f"csv:{path}").train.to_dict("records") == [{"text": "fine", "label": 1}]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_empty_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"empty.{kind}"
    path.write_bytes(b"")
    with pytest.raises(DataSourceError) as info:
        load(f"{kind}:{path}")
    assert str(info.value) == f"{kind} file {str(path)!r} is empty"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_header_only_file(tmp_path: Path, kind: str) -> None:
    path = write_table(ROWS.iloc[0:0], tmp_path / f"header.{kind}")
    with pytest.raises(DataSourceError) as info:
        load(f"{kind}:{path}")
    assert str(info.value) == f"{kind} file {str(path)!r} has a header but no rows"


def test_unreadable_parquet_is_a_data_source_error(tmp_path: Path) -> None:
    path = tmp_path / "reviews.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataSourceError, match="cannot be read") as info:
        load(f"parquet:{path}")
    assert str(path) in str(info.value)


def test_mixed_label_types_stay_text_for_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("text,label\ngreat,pos\nawful,0\nfine,1\nunlabelled,\n", encoding="utf-8")
    train = load(f"csv:{path}").train
    assert train["label"].iloc[:3].tolist() == ["pos", "0", "1"]
    assert pd.isna(train["label"].iloc[3])  # missing stays missing, for the contract to count


def test_all_numeric_string_labels_become_numbers(tmp_path: Path) -> None:
    path = write_table(ROWS.assign(label=["1", "0", "1", "0"]), tmp_path / "strings.parquet")
    train = load(f"parquet:{path}").train
    assert pd.api.types.is_numeric_dtype(train["label"])
    assert train["label"].tolist() == [1, 0, 1, 0]


def test_out_of_range_numeric_labels_are_left_for_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "stars.csv"
    path.write_text("text,label\ngreat,5\nawful,1\n", encoding="utf-8")
    assert load(f"csv:{path}").train["label"].tolist() == [5, 1]


# --- aclImdb folder / archive ----------------------------------------------------------------------------

# (split, polarity) -> reviews; train/unsup and the loose files of the official layout must be ignored.
ACLIMDB = {
    ("train", "pos"): ["Loved it.", "A masterpiece <br /><br />of cinema.", "Great fun."],
    ("train", "neg"): ["Hated it.", "Two hours I will never get back."],
    ("test", "pos"): ["Wonderful acting.", "Would watch again."],
    ("test", "neg"): ["Boring plot.", "Terrible."],
    ("train", "unsup"): ["No label here.", "Nor here.", "Still none.", "Nope."],
}
LOOSE_FILES = ["README", "imdb.vocab", "imdbEr.txt", "train/labeledBow.feat", "train/urls_pos.txt", "test/urls_neg.txt"]


def aclimdb_members() -> list[tuple[str, bytes]]:
    """(path under aclImdb/, bytes) in the official naming: ``{id}_{rating}.txt``."""
    members = [(name, b"not a review\n") for name in LOOSE_FILES]
    for (split, polarity), texts in ACLIMDB.items():
        for number, text in enumerate(texts):
            rating = 0 if polarity == "unsup" else (8 if polarity == "pos" else 2)
            members.append((f"{split}/{polarity}/{number}_{rating}.txt", f"{text}\n".encode("utf-8")))
    return members


def build_aclimdb_folder(parent: Path, members: list[tuple[str, bytes]] | None = None) -> Path:
    root = parent / "aclImdb"
    for name, data in members or aclimdb_members():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def build_aclimdb_archive(path: Path, members: list[tuple[str, bytes]] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members or aclimdb_members():
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def expected(split: str) -> list[tuple[str, int]]:
    rows = [(text, 1) for text in ACLIMDB[(split, "pos")]] + [(text, 0) for text in ACLIMDB[(split, "neg")]]
    return sorted(rows)


def rows_of(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted(zip(frame["text"], frame["label"].astype(int)))


def check_aclimdb(data: sources.SourceData) -> None:
    assert list(data.train.columns) == ["text", "label"]
    assert rows_of(data.train) == expected("train")  # 5 rows: train/unsup is not in it
    assert data.test is not None, "the source's own test split must be returned"
    assert rows_of(data.test) == expected("test")
    assert data.train["label"].value_counts().to_dict() == {1: 3, 0: 2}


def test_aclimdb_folder(tmp_path: Path) -> None:
    root = build_aclimdb_folder(tmp_path)
    check_aclimdb(load(f"aclimdb:{root}"))


def test_aclimdb_parent_of_folder(tmp_path: Path) -> None:
    build_aclimdb_folder(tmp_path)
    check_aclimdb(load(f"aclimdb:{tmp_path}"))


def test_aclimdb_archive(tmp_path: Path) -> None:
    archive = build_aclimdb_archive(tmp_path / ACLIMDB_ARCHIVE_NAME)
    check_aclimdb(load(f"aclimdb:{archive}"))


def test_aclimdb_archive_gives_the_same_rows_in_the_same_order_as_its_folder(tmp_path: Path) -> None:
    # Member order inside an archive is arbitrary; the rows (and so the seeded splits) must not depend on it.
    members = aclimdb_members()
    random.Random(7).shuffle(members)
    archive = build_aclimdb_archive(tmp_path / "shuffled.tar.gz", members)
    folder = build_aclimdb_folder(tmp_path / "unpacked")
    from_archive, from_folder = load(f"aclimdb:{archive}"), load(f"aclimdb:{folder}")
    pd.testing.assert_frame_equal(from_archive.train, from_folder.train)
    pd.testing.assert_frame_equal(from_archive.test, from_folder.test)


def test_aclimdb_without_test_split_returns_none(tmp_path: Path) -> None:
    members = [(name, data) for name, data in aclimdb_members() if name.startswith("train/")]
    data = load(f"aclimdb:{build_aclimdb_folder(tmp_path, members)}")
    assert data.test is None
    assert rows_of(data.train) == expected("train")


def test_aclimdb_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="neither a folder nor a .tar.gz") as info:
        load(f"aclimdb:{tmp_path / 'nope'}")
    assert str(tmp_path / "nope") in str(info.value)


def test_aclimdb_folder_without_reviews(tmp_path: Path) -> None:
    (tmp_path / "something").mkdir()
    with pytest.raises(DataSourceError, match="no reviews under train/pos") as info:
        load(f"aclimdb:{tmp_path / 'something'}")
    assert str(tmp_path / "something") in str(info.value)


def test_aclimdb_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / ACLIMDB_ARCHIVE_NAME
    path.write_bytes(b"<html>503 Service Unavailable</html>")
    with pytest.raises(DataSourceError, match="cannot be read as .tar.gz") as info:
        load(f"aclimdb:{path}")
    assert str(path) in str(info.value)


def noisy_archive_bytes() -> bytes:
    """An aclImdb archive large enough that damage lands in the middle of the compressed reviews."""
    words = random.Random(0).choices(["good", "bad", "plot", "actor", "scene", "film", "boring", "great"], k=60_000)
    members = [
        (f"train/{'pos' if i % 2 else 'neg'}/{i}_5.txt", " ".join(words[i * 200 : (i + 1) * 200]).encode())
        for i in range(300)
    ]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_aclimdb_truncated_archive(tmp_path: Path) -> None:
    raw = noisy_archive_bytes()
    path = tmp_path / "truncated.tar.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataSourceError, match="cannot be read as .tar.gz") as info:
        load(f"aclimdb:{path}")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("where", [0.3, 0.7, 0.9])
def test_aclimdb_archive_damaged_in_the_middle_is_an_error_not_fewer_reviews(tmp_path: Path, where: float) -> None:
    raw = noisy_archive_bytes()
    assert len(load_bytes_as_archive(tmp_path / "intact.tar.gz", raw).train) == 300
    start = int(len(raw) * where)
    damaged = raw[:start] + bytes(byte ^ 0x55 for byte in raw[start : start + 64]) + raw[start + 64 :]
    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(damaged)
    with pytest.raises(DataSourceError, match="cannot be read as .tar.gz") as info:
        load(f"aclimdb:{path}")
    assert str(path) in str(info.value)


def load_bytes_as_archive(path: Path, raw: bytes) -> sources.SourceData:
    path.write_bytes(raw)
    return load(f"aclimdb:{path}")


def test_aclimdb_non_utf8_review_in_folder_names_the_file(tmp_path: Path) -> None:
    members = aclimdb_members() + [("train/neg/99_1.txt", "Un film très mauvais".encode("latin-1"))]
    root = build_aclimdb_folder(tmp_path, members)
    with pytest.raises(DataSourceError, match="not valid UTF-8") as info:
        load(f"aclimdb:{root}")
    assert str(root / "train" / "neg" / "99_1.txt") in str(info.value)


def test_aclimdb_non_utf8_review_in_archive_names_archive_and_member(tmp_path: Path) -> None:
    members = aclimdb_members() + [("test/pos/99_9.txt", "Très bien".encode("latin-1"))]
    archive = build_aclimdb_archive(tmp_path / "latin1.tar.gz", members)
    with pytest.raises(DataSourceError, match="not valid UTF-8") as info:
        load(f"aclimdb:{archive}")
    assert f"{archive}:aclImdb/test/pos/99_9.txt" in str(info.value)


# --- tfds:imdb_reviews -----------------------------------------------------------------------------------


@pytest.fixture
def manual_dir(tmp_path: Path) -> Path:
    """A manual dir holding a tiny ``aclImdb_v1.tar.gz`` in the official layout (train/unsup included)."""
    folder = tmp_path / "manual"
    folder.mkdir()
    build_aclimdb_archive(folder / ACLIMDB_ARCHIVE_NAME)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No network: the probe says so, and any TFDS download attempt fails the test at once."""
    import tensorflow_datasets as tfds

    probed: list[str] = []

    def no_network(host: str, timeout_s: float = 0.0) -> bool:
        probed.append(host)
        return False

    def no_download(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise AssertionError(f"TFDS tried to download {args or kwargs}")

    monkeypatch.setattr(sources, "network_reaches", no_network)
    monkeypatch.setattr(tfds.download.DownloadManager, "_download", no_download)
    return probed


def register_manual_archive_checksum(monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    """Make TFDS expect *this* archive at the official URL instead of the real 84 MB one.

    TFDS 4.9.10 finds the manual file by the ``filename`` of the URL's registered ``UrlInfo`` (from the
    builder's ``checksums.tsv``, exposed as the memoised class property ``Builder.url_infos``, which the
    ``DownloadManager`` merges over its global table), then compares size and SHA-256 of that file with the
    registered ones (``DownloadManager._register_or_validate_checksums``). Registering the tiny archive's own
    size and checksum for the one URL keeps that validation running; only the expected values change, on the
    imdb_reviews builder class, for this test.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums

    builder_cls = tfds.builder_cls("imdb_reviews")
    registered = builder_cls.url_infos
    assert len(registered) == 1, registered
    (url, official), = registered.items()
    assert official.filename == ACLIMDB_ARCHIVE_NAME
    computed = checksums.compute_url_info(archive)
    tiny = checksums.UrlInfo(size=computed.size, checksum=computed.checksum, filename=official.filename)
    monkeypatch.setattr(builder_cls, "url_infos", {url: tiny})


@pytest.mark.timeout(180)
def test_tfds_prepares_from_manual_archive_and_returns_its_rows(
    tmp_path: Path, manual_dir: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register_manual_archive_checksum(monkeypatch, manual_dir / ACLIMDB_ARCHIVE_NAME)
    data_dir = tmp_path / "tfds"
    config = dict(tfds_data_dir=str(data_dir), tfds_manual_dir=str(manual_dir))

    data = load("tfds:imdb_reviews", **config)

    check_aclimdb(data)
    assert offline == [], "with the manual archive there, the network must not even be probed"
    assert (data_dir / "imdb_reviews" / "plain_text" / "1.0.0" / "dataset_info.json").is_file()

    # Prepared once: a second load reads the prepared files, without the manual dir.
    again = load("tfds:imdb_reviews", tfds_data_dir=str(data_dir))
    assert rows_of(again.train) == rows_of(data.train)
    assert rows_of(again.test) == rows_of(data.test)


@pytest.mark.timeout(120)
def test_tfds_rejects_a_manual_archive_whose_checksum_is_not_the_registered_one(
    tmp_path: Path, manual_dir: Path, offline: list[str]
) -> None:
    # Without registering the tiny archive, TFDS's own validation refuses it; seqflow reports that in one line.
    with pytest.raises(DataSourceError, match="could not be prepared: NonMatchingChecksumError"):
        load("tfds:imdb_reviews", tfds_data_dir=str(tmp_path / "tfds"), tfds_manual_dir=str(manual_dir))


@pytest.mark.parametrize("with_manual_dir", [False, True])
def test_tfds_without_archive_and_network_fails_fast(
    tmp_path: Path, offline: list[str], with_manual_dir: bool
) -> None:
    empty_manual_dir = tmp_path / "manual"
    empty_manual_dir.mkdir()
    started = time.monotonic()
    with pytest.raises(DataSourceError) as info:
        load(
            "tfds:imdb_reviews",
            tfds_data_dir=str(tmp_path / "tfds"),
            tfds_manual_dir=str(empty_manual_dir) if with_manual_dir else None,
        )
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert offline == [sources.ACLIMDB_DOWNLOAD_HOST]
    assert "cannot be reached (no network)" in message
    assert "data.tfds_manual_dir" in message
    assert ACLIMDB_ARCHIVE_NAME in message
    assert "aclimdb:PATH" in message


@pytest.mark.parametrize(
    "spec", ["tfds:mnist", "tfds:imdb", "tfds:glue/sst2", "tfds:imdb_reviews/subwords8k", "tfds:imdb_reviews:9.9.9"]
)
def test_tfds_unsupported_name_is_rejected(tmp_path: Path, offline: list[str], spec: str) -> None:
    with pytest.raises(DataSourceError, match="tfds source"):
        load(spec, tfds_data_dir=str(tmp_path / "tfds"))
    assert offline == []


# --- embedded and spec errors ----------------------------------------------------------------------------


def test_embedded_is_the_25000_labelled_imdb_reviews() -> None:
    data = load("embedded")
    assert data.test is None
    assert len(data.train) == 25_000
    assert list(data.train.columns) == ["text", "label"]
    assert data.train["label"].value_counts().to_dict() == {0: 12_500, 1: 12_500}
    assert data.train["text"].map(type).eq(str).all()


def test_embedded_unknown_subset() -> None:
    with pytest.raises(DataSourceError, match="embedded subset 'yelp' does not exist"):
        load("embedded:yelp")


@pytest.mark.parametrize("spec", ["ftp://host/reviews.csv", "json:/tmp/x.json", "", "tfds_imdb"])
def test_unknown_spec_kind(spec: str) -> None:
    with pytest.raises(DataSourceError, match="unknown data source"):
        load(spec)


@pytest.mark.parametrize("kind", ["csv", "parquet", "aclimdb"])
def test_path_kinds_need_a_path(kind: str) -> None:
    with pytest.raises(DataSourceError, match=f"data source '{kind}' needs a path"):
        load(f"{kind}:")
