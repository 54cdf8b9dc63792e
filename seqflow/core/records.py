"""Building a step's record from what the step before it returned: a train step's record carries most of its
fit's outcome, an evaluate step's most of the trained record, under the same field names."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

Record = TypeVar("Record")


def carried_over(record: type[Record], source: Any, **given: Any) -> Record:
    """A ``record`` (a dataclass) with the fields in ``given``, each other field that ``source`` has an attribute
    of the same name for taken from it, and the rest left to their defaults (a required one missing raises)."""
    carried = {
        field.name: getattr(source, field.name)
        for field in dataclasses.fields(record)  # type: ignore[arg-type]
        if field.name not in given and hasattr(source, field.name)
    }
    return record(**carried, **given)
