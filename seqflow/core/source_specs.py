"""A data source named on the command line or in a profile, ``KIND`` or ``KIND:ARGUMENT``, the same for every
pipeline; each pipeline knows its kinds and which of them need an argument."""

from __future__ import annotations

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
