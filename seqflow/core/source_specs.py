"""A data source named on the command line or in a profile, ``KIND`` or ``KIND:ARGUMENT``, the same for every
pipeline; each pipeline knows its kinds and which of them need an argument."""

from __future__ import annotations

from pathlib import Path
from typing import Container

from seqflow.core.errors import DataSourceError


def split_source_spec(spec: str, kinds: Container[str], unknown_message: str) -> tuple[str, str]:
    """``"csv:/a/b.csv"`` -> ``("csv", "/a/b.csv")``; ``"embedded"`` -> ``("embedded", "")``. The kind is
    lower-cased; a kind not in ``kinds`` is refused with ``unknown_message``."""
    kind, _, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in kinds:
        raise DataSourceError(unknown_message)
    return kind, argument


def refuse_missing_source_path(spec: str, path_kinds: Container[str]) -> None:
    """Refuse a ``KIND:PATH`` source whose path does not exist, for the kinds in ``path_kinds``: checked with the
    standard library alone, before a command imports its loaders (pandas takes seconds on a busy machine)."""
    kind, _, argument = spec.partition(":")
    kind, argument = kind.strip().lower(), argument.strip()
    if kind in path_kinds and argument and not Path(argument).exists():
        raise DataSourceError(f"{kind} {'path' if kind == 'aclimdb' else 'file'} {argument!r} does not exist")
