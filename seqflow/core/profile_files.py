"""Profile files: a named profile plus settings, in YAML, JSON or TOML, that ``--profile FILE`` accepts like a
name. ``seqflow tune`` writes its best trial as one; anyone can write one by hand:

    base: quick                      # the named profile the settings apply to
    name: tuned-embedding_pool       # what runs are tagged with as their profile (default: the file's stem)
    settings:                        # the same keys as --set, with typed or text values
      training.architectures: [embedding_pool]
      training.per_architecture.embedding_pool.learning_rate: 0.003
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seqflow.core.errors import ConfigError
from seqflow.core.search_space import STRUCTURED_SUFFIXES, read_structured_file


class ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The named profile the settings start from.
    base: str
    # The profile name runs are tagged with; the file's stem when not given.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    # Overrides, as --set takes them: section.field (or section.field.ITEM.field) -> value.
    settings: dict[str, Any] = Field(default_factory=dict)


def is_profile_file(name: str) -> bool:
    """Whether a --profile value names a file rather than a profile (by its suffix)."""
    return Path(name).suffix.lower() in STRUCTURED_SUFFIXES


def read_profile_file(path: str | Path) -> ProfileFile:
    """The profile file at ``path``, or a one-line ConfigError."""
    raw = read_structured_file(path, "profile file")
    try:
        return ProfileFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise ConfigError(f"profile file {str(path)!r}: {where}: {first['msg']}") from None


def resolve_profile_file(path: str, profiles: Mapping[str, Any], apply: Any, kind: str) -> Any:
    """The config a profile file describes: its base profile with its settings applied, named after it."""
    profile = read_profile_file(path)
    if profile.base not in profiles:
        raise ConfigError(f"profile file {path!r}: unknown {kind} {profile.base!r}; known: {', '.join(sorted(profiles))}")
    name = profile.name or re.sub(r"[^A-Za-z0-9_.+-]", "-", Path(path).stem)
    try:
        return apply(profiles[profile.base], {**profile.settings, "profile": name})
    except ConfigError as error:
        raise ConfigError(f"profile file {path!r}: {error}") from None


def write_profile_file(path: Path, base: str, name: str, settings: Mapping[str, Any], comment: str) -> Path:
    """Write a profile file (YAML) that ``--profile FILE`` reads back; ``comment`` heads it."""
    import yaml

    body = yaml.safe_dump({"base": base, "name": name, "settings": dict(settings)}, sort_keys=False)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    from seqflow.core.files import write_text_atomically

    write_text_atomically(path, header + body)
    read_profile_file(path)
    return path
