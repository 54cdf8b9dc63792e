"""What a ``seqflow`` command prints as its result: the human text, or with ``--json`` one JSON document of the
same data, through one emitter for every command (:func:`report`).

With ``--json`` standard output carries only that document: while the command runs (:func:`json_document`),
anything else written to standard output, by seqflow, a library or a child process, goes to standard error, and
the document is written once the command has finished; a refusal is a JSON object ``{"error", "exit_code"}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import io
import json
import math
import os
import sys
from pathlib import PurePath
from typing import Any, Callable, Iterator, Mapping

from seqflow.core.errors import ExitCode

# The document of the command running under json_document(), written to standard output when it ends.
_document: io.StringIO | None = None


def jsonable(value: Any) -> Any:
    """``value`` as JSON types: dataclasses as objects (through their ``as_dict`` when they have one), paths as
    text, tuples and sets as lists, NaN and infinities as null (JSON has neither)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        as_dict = getattr(value, "as_dict", None)
        fields = as_dict() if callable(as_dict) else {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return jsonable(fields)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return jsonable(value.item())
    return str(value)


def emit_json(value: Any) -> None:
    """``value`` as one JSON document: into the running command's document (see :func:`json_document`), or
    straight to standard output."""
    text = json.dumps(jsonable(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if _document is not None:
        _document.truncate(0)
        _document.seek(0)
        _document.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def report(args: Any, result: Any, text: str | None = None) -> int:
    """A command's result: JSON with ``--json``, else ``text`` (default: ``result.render()``)."""
    if getattr(args, "json", False):
        emit_json(result)
    else:
        print(result.render() if text is None else text)
    return ExitCode.OK


def reporting(args: Any) -> Callable[[Any, str], int]:
    """:func:`report` for ``args`` as the shared runner calls it (the summary, and its text with the links)."""
    return lambda result, text: report(args, result, text)


def report_error(args: Any, message: str, code: int) -> None:
    """A refusal as a JSON object on standard output, for ``--json`` (the one-line message goes to standard
    error as always)."""
    if getattr(args, "json", False):
        emit_json({"error": message, "exit_code": int(code)})


@contextlib.contextmanager
def json_document(enabled: bool) -> Iterator[None]:
    """While inside, with ``enabled``: standard output (Python's and file descriptor 1, which child processes
    inherit) goes to standard error; the JSON document :func:`emit_json` keeps is written to standard output on a
    normal exit, dropped on an exception (the caller reports it with :func:`report_error`)."""
    global _document
    if not enabled:
        yield
        return
    stdout = sys.stdout
    stdout.flush()
    saved_fd = None
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        if stdout.fileno() == 1:
            saved_fd = os.dup(1)
            os.dup2(sys.stderr.fileno(), 1)
    _document, sys.stdout = io.StringIO(), sys.stderr
    completed = False
    try:
        yield
        completed = True
    finally:
        document, _document = _document, None
        sys.stderr.flush()
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
        sys.stdout = stdout
        if completed and document.getvalue():
            stdout.write(document.getvalue())
            stdout.flush()


def report_profiles(
    args: Any, profiles: Mapping[str, Any], get_profile: Callable[[str], Any], row: Callable[[str, Any], dict], line: Callable[[dict], str]
) -> int:
    """``profiles [NAME]`` of a pipeline: every setting of NAME, or one ``row`` per profile (shown by ``line``)."""
    if args.name:
        flat = get_profile(args.name).to_flat_dict()
        return report(args, flat, "\n".join(f"{key:40} {value}" for key, value in flat.items()))
    rows = [row(name, profile) for name, profile in profiles.items()]
    return report(args, rows, "\n".join(line(shown) for shown in rows))
