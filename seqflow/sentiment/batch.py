"""``seqflow predict --input FILE|- --output FILE``: score a file of reviews, streamed in batches.

Input formats (from the file's suffix, or ``--format``; standard input is plain text unless told):

``csv``    a header row with a ``text`` column; every column comes back, with ``probability`` and ``label``
``jsonl``  one JSON object with a ``"text"`` field per line; every field comes back, with the two scores
``text``   one review per line (a line break ends a review); ``text``, ``probability``, ``label`` come back

The output is CSV, or JSON lines when its name ends in ``.jsonl``/``.ndjson``. Memory stays bounded: the input is
read ``BATCH_ROWS`` reviews at a time and each batch is written before the next is read. A review that cannot be
scored (empty after tokenisation, not UTF-8 text) stops the run with ONE line naming it by its row in the whole
input (rows count reviews: a CSV header and blank CSV lines are not rows); an output file is written under a
temporary name and renamed into place only when every row was scored, so it is either complete or absent
(standard output keeps the batches written before the refusal).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import IO, Callable, Iterator

import pandas as pd

from seqflow.core.errors import SeqflowError
from seqflow.core.files import partial_path
from seqflow.sentiment.serving import TEXT_COLUMN, InputRefused, renumber_rows

INPUT_FORMATS = ("csv", "jsonl", "text")
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "text"}
# Reviews read, scored and written at a time: IMDB reviews average ~1.3 kB, so a batch holds ~11 MB of text.
BATCH_ROWS = 8192
SCORE_COLUMNS = ("probability", "label")
# Invalid UTF-8 bytes are read as lone surrogates, so the model refuses those rows by number (as it does for
# argv) instead of the whole file failing to decode at an unknown place.
_DECODE_ERRORS = "surrogateescape"


def input_format(path: str, chosen: str | None) -> str:
    """The format of the reviews at ``path`` (``chosen``, else from the suffix; standard input ``-`` is plain
    text), after checking the file is there: called before the model is loaded, so a wrong path fails at once."""
    if path != "-":
        source = Path(path)
        if source.is_dir():
            raise SeqflowError(f"--input {path!r} is a folder; pass a file of reviews (or - for standard input)")
        if not source.is_file():
            raise SeqflowError(f"--input file {path!r} does not exist")
    if chosen:
        return chosen
    if path == "-":
        return "text"
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise SeqflowError(
            f"cannot tell the format of {path!r} from its suffix; name it .csv, .jsonl or .txt, or pass "
            f"--format {'|'.join(INPUT_FORMATS)}"
        )
    return _SUFFIX_FORMATS[suffix]


def checked_input_format(
    texts: list[str], input_path: str | None, output_path: str | None, chosen: str | None, as_json: bool
) -> str | None:
    """The input file's format for ``seqflow predict``'s options, or None when the reviews are TEXT arguments;
    a :class:`SeqflowError` for options that do not go together."""
    if bool(texts) == bool(input_path):
        raise SeqflowError("give reviews as TEXT arguments or with --input FILE (one of the two)")
    if input_path is None:
        if output_path or chosen:
            raise SeqflowError("--output and --format go with --input FILE")
        return None
    if as_json and not output_path:
        raise SeqflowError(
            "--json with --input needs --output FILE (the scores go there, .jsonl for JSON lines; --json prints how "
            "many were scored); without --output the scores are written to standard output"
        )
    return input_format(input_path, chosen)


def _open_input(path: str) -> contextlib.AbstractContextManager[IO[str]]:
    if path == "-":
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors=_DECODE_ERRORS, newline="")
        return contextlib.nullcontext(stdin)
    return open(path, encoding="utf-8", errors=_DECODE_ERRORS, newline="")


# Longest CSV field read (csv's default, 128 KiB, is shorter than some reviews); a longer one is refused.
MAX_FIELD_CHARS = 16 * 1024 * 1024


def _csv_batches(handle: IO[str], where: str) -> Iterator[pd.DataFrame]:
    # The csv module, not pandas: pandas' parser cannot hold the lone surrogates that stand for invalid bytes.
    reader = csv.reader(handle)
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        header = next(reader, None)
        if not header:
            raise SeqflowError(f"{where} is empty; it needs a header row with a {TEXT_COLUMN!r} column")
        if TEXT_COLUMN not in header:
            raise SeqflowError(f"{where} has no {TEXT_COLUMN!r} column; its header is {header}")
        rows: list[list[str]] = []
        for row in reader:
            if not row:
                continue  # a blank line is no row
            if len(row) != len(header):
                raise SeqflowError(
                    f"{where}, line {reader.line_num}: {len(row)} field(s) where the header has {len(header)}"
                )
            rows.append(row)
            if len(rows) == BATCH_ROWS:
                yield pd.DataFrame(rows, columns=header)
                rows = []
        if rows:
            yield pd.DataFrame(rows, columns=header)
    except csv.Error as exc:
        raise SeqflowError(f"{where}, line {reader.line_num}: not readable CSV ({exc})") from None
    finally:
        csv.field_size_limit(previous_limit)


def _jsonl_row(line: str, number: int, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SeqflowError(f"{where}, line {number}: not JSON ({exc.msg}); each line must be one JSON object") from None
    if not isinstance(row, dict) or TEXT_COLUMN not in row:
        raise SeqflowError(f"{where}, line {number}: not a JSON object with a {TEXT_COLUMN!r} field")
    return row


def _line_batches(handle: IO[str], parse: Callable[[str, int], dict]) -> Iterator[pd.DataFrame]:
    rows: list[dict] = []
    for number, line in enumerate(handle, start=1):
        rows.append(parse(line.rstrip("\r\n"), number))
        if len(rows) == BATCH_ROWS:
            yield pd.DataFrame(rows)
            rows = []
    if rows:
        yield pd.DataFrame(rows)


def read_batches(handle: IO[str], fmt: str, where: str) -> Iterator[pd.DataFrame]:
    """DataFrames of at most BATCH_ROWS rows, each with a ``text`` column, in input order."""
    if fmt == "csv":
        return _csv_batches(handle, where)
    if fmt == "jsonl":
        return _line_batches(handle, lambda line, number: _jsonl_row(line, number, where))
    return _line_batches(handle, lambda line, number: {TEXT_COLUMN: line})


class _Writer:
    """CSV or JSON lines, the header (CSV) taken from the first batch."""

    def __init__(self, handle: IO[str], as_jsonl: bool) -> None:
        self._handle = handle
        self._as_jsonl = as_jsonl
        self._csv: csv.writer | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._as_jsonl:
            for record in frame.to_dict(orient="records"):
                self._handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            return
        if self._csv is None:
            self._csv = csv.writer(self._handle, lineterminator="\n")
            self._csv.writerow(frame.columns)
        self._csv.writerows(frame.itertuples(index=False, name=None))


def _scored(model, batch: pd.DataFrame, first_row: int, where: str) -> pd.DataFrame:  # noqa: ANN001 - a PyFuncModel
    try:
        predictions = model.predict(batch[[TEXT_COLUMN]])
    except InputRefused as refused:
        # Name rows by their place in the whole input, not in this batch.
        raise InputRefused(
            f"{where}, batch of rows {first_row + 1} to {first_row + len(batch)}: {renumber_rows(str(refused), first_row)}"
        ) from None
    scores = pd.DataFrame({column: predictions[column].to_numpy() for column in SCORE_COLUMNS})
    # Input columns first, scores last; an input column of the same name is replaced by the score.
    return pd.concat([batch.drop(columns=list(SCORE_COLUMNS), errors="ignore"), scores], axis=1)


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or a temporary file next to ``path`` renamed into place only on success."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    if target.is_dir():
        raise SeqflowError(f"--output {path!r} is a folder; name a file")
    if not target.parent.is_dir():
        raise SeqflowError(f"--output folder {str(target.parent)!r} does not exist")
    partial = partial_path(target)
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            yield handle
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _progress(enabled: bool):  # noqa: ANN202 - a rich Progress or a null context
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(), TextColumn("{task.completed:,} reviews scored"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )


def score_file(model, input_path: str, output_path: str | None, fmt: str | None = None) -> tuple[int, float]:  # noqa: ANN001
    """Score every review of ``input_path`` with ``model`` (a loaded pyfunc) into ``output_path`` (default:
    standard output); returns ``(reviews, seconds)``. Progress goes to standard error when it is a terminal."""
    chosen = input_format(input_path, fmt)
    where = "standard input" if input_path == "-" else f"{chosen} file {input_path!r}"
    as_jsonl = output_path is not None and Path(output_path).suffix.lower() in (".jsonl", ".ndjson")
    started = time.perf_counter()
    reviews = 0
    with _open_input(input_path) as handle, _output(output_path) as out, _progress(sys.stderr.isatty()) as progress:
        task = progress.add_task("scoring", total=None) if progress is not None else None
        writer = _Writer(out, as_jsonl)
        for batch in read_batches(handle, chosen, where):
            writer.write(_scored(model, batch, reviews, where))
            reviews += len(batch)
            if progress is not None:
                progress.update(task, completed=reviews)
        if reviews == 0:
            raise SeqflowError(f"{where} has no reviews")
    return reviews, time.perf_counter() - started
