"""``--set section.field=value`` and profiles: text settings applied to a validated config, for any pipeline.

A config is a section-made pydantic dataclass (seqflow.core.config). Its overrides arrive as strings from the
command line or an env file, or typed from a stored flat dict; :func:`replace_settings` shapes them (none,
comma lists, keyed items) and lets the config's own fields and validators decide, so every refusal is one
ConfigError line naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Mapping, TypeVar

from seqflow.core.config import field_annotation, fields_of, item_type, unwrap, validated
from seqflow.core.errors import ConfigError

T = TypeVar("T")


# --- text overrides: ``--set section.field=value`` ---------------------------------------------------------


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["a.b=1", "c=2"]`` from ``--set`` flags into a dict, rejecting items without ``=``."""
    parsed: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects section.field=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def from_text(raw: Any, annotation: Any, path: str) -> Any:
    """A ``--set`` or env-file string shaped for ``annotation``: none/null/empty for optional fields, commas
    for tuples (keyed items in their ``KEY:field=value;...`` form). Typed values pass through; pydantic does
    the rest of the typing."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    base, _, optional = unwrap(annotation)
    if optional and text.lower() in ("none", "null", ""):
        return None
    if typing.get_origin(base) is tuple:
        item_class = unwrap(item_type(annotation))[0]
        items = [part.strip() for part in text.split(",") if part.strip()]
        if hasattr(item_class, "item_key"):
            return tuple(keyed_item_from_text(item_class, item, path) for item in items)
        return tuple(items)
    return text


def _plain_values(section: Any) -> dict[str, Any]:
    return {name: getattr(section, name) for name in fields_of(type(section))}


def replace_settings(config: T, overrides: Mapping[str, Any]) -> T:
    """``config`` with ``{"section.field" or "field": value}`` applied (values may be strings), validated.

    Keyed item lists (``training.per_architecture``) also take ``section.field.ITEM.name=value``: one value of
    the item whose key is ITEM, kept with its other values. Unknown keys raise ConfigError naming the key.
    """
    top = _plain_values(config)
    sections = {name for name, value in top.items() if dataclasses.is_dataclass(value)}
    top_changes: dict[str, Any] = {}
    changes: dict[str, dict[str, Any]] = {}
    for key, raw in overrides.items():
        section, _, name = key.partition(".")
        if not name:
            if key not in top or key in sections:
                raise ConfigError(f"unknown setting {key!r}; use section.field, e.g. training.epochs")
            top_changes[key] = from_text(raw, field_annotation(fields_of(type(config))[key]), key)
            continue
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r} in {key!r}; sections: {sorted(sections)}")
        section_fields = fields_of(type(top[section]))
        field_name, _, item_path = name.partition(".")
        if field_name not in section_fields:
            raise ConfigError(f"unknown setting {key!r}; {section} has: {sorted(section_fields)}")
        annotation = field_annotation(section_fields[field_name])
        section_changes = changes.setdefault(section, {})
        if item_path:
            current = section_changes.get(field_name, getattr(top[section], field_name))
            section_changes[field_name] = _with_item_value(current, annotation, item_path, raw, key, f"{section}.{field_name}")
        else:
            section_changes[field_name] = from_text(raw, annotation, f"{section}.{field_name}")
    data = {**top, **top_changes, **{name: {**_plain_values(top[name]), **values} for name, values in changes.items()}}
    return validated(type(config), data)


def _with_item_value(items: Any, annotation: Any, item_path: str, raw: Any, key: str, path: str) -> tuple[Any, ...]:
    item_class = unwrap(item_type(annotation))[0]
    key_field = getattr(item_class, "item_key", None)
    item, _, name = item_path.partition(".")
    if key_field is None or not item or not name or "." in name:
        raise ConfigError(f"{key!r}: expected {path}.{getattr(item_class, 'item_label', 'ITEM')}.field=value")
    existing = next((i for i in items if getattr(i, key_field) == item), None)
    values = _plain_values(existing) if existing is not None else {key_field: item}
    updated = keyed_item(item_class, {**values, name: raw}, path, key)
    return (*(i for i in items if getattr(i, key_field) != item), updated)


def keyed_item(item_class: type[T], values: Mapping[str, Any], path: str, key: str) -> T:
    """An item of a keyed list (an ArchitectureOverride) from text values; errors name ``path[ITEM]: field``."""
    key_field = item_class.item_key  # type: ignore[attr-defined]
    settable = sorted(name for name in fields_of(item_class) if name != key_field)
    unknown = [name for name in values if name not in settable and name != key_field]
    if unknown:
        raise ConfigError(f"{key}: {unknown[0]!r} cannot be set per {item_class.item_kind}; settable: {settable}")  # type: ignore[attr-defined]
    fields = fields_of(item_class)
    parsed = {name: from_text(raw, field_annotation(fields[name]), key) for name, raw in values.items()}
    return validated(item_class, parsed, owner=f"{path}[{values[key_field]}]")


def keyed_item_from_text(item_class: type[T], text: str, path: str) -> T:
    """One keyed item from its text form ``KEY:field=value;field=value`` (the class's ``item_syntax``)."""
    syntax = item_class.item_syntax  # type: ignore[attr-defined]
    item, sep, assignments = text.partition(":")
    if not sep or not item.strip():
        raise ConfigError(f"{path} expects {syntax}; got {text!r}")
    values: dict[str, Any] = {item_class.item_key: item.strip()}  # type: ignore[attr-defined]
    for part in (part.strip() for part in assignments.split(";")):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{path} expects {syntax}; got {part!r}")
        values[name.strip()] = value.strip()
    return keyed_item(item_class, values, path, path)


def keyed_item_text(item: Any) -> str:
    """``KEY:field=value;...`` with only the fields that are set: the form :func:`keyed_item_from_text` reads."""
    key_field = item.item_key
    values = [f"{name}={getattr(item, name)}" for name in fields_of(type(item)) if name != key_field and getattr(item, name) is not None]
    return f"{getattr(item, key_field)}:{';'.join(values)}"


# --- profiles ---------------------------------------------------------------------------------------------


def resolve_settings(
    base: T,
    environment_overrides: Mapping[str, Any] | None,
    explicit_overrides: Mapping[str, Any] | None,
    apply: Callable[[T, Mapping[str, Any]], T],
) -> T:
    """``base`` with SEQFLOW_* overrides from mlflow.env / the environment, then explicit ones (later wins).

    When the environment's values alone are refused, the message says they came from there: a bad
    ``SEQFLOW_SEED`` in a shared env file is not something the command line shows.
    """
    environment, explicit = dict(environment_overrides or {}), dict(explicit_overrides or {})
    try:
        return apply(base, {**environment, **explicit})
    except ConfigError as error:
        from_environment = {key: value for key, value in environment.items() if key not in explicit}
        if from_environment:
            try:
                apply(base, from_environment)
            except ConfigError as environment_error:
                named = [key for key in from_environment if key in str(environment_error)] or list(from_environment)
                # SEQFLOW_SEED -> seed: the settings module maps each variable to its key by this rule.
                names = ", ".join(f"SEQFLOW_{key.upper()}" for key in named)
                raise ConfigError(f"{environment_error} (set by {names} in the env file or the environment)") from None
        raise error


@dataclasses.dataclass(frozen=True)
class ProfileRegistry(typing.Generic[T]):
    """A pipeline's named profiles and how overrides apply to them: ``seqflow ... --profile NAME``."""

    profiles: Mapping[str, T]
    apply: Callable[[T, Mapping[str, Any]], T]
    # How messages name a profile of this pipeline ("profile", "charlm profile").
    kind: str = "profile"

    def get(self, name: str) -> T:
        """The named profile (or the profile file ``name``, see :mod:`seqflow.core.profile_files`), or a
        ConfigError listing the known ones."""
        from seqflow.core.profile_files import is_profile_file, resolve_profile_file

        if is_profile_file(name):
            return resolve_profile_file(name, self.profiles, self.apply, self.kind)
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(f"unknown {self.kind} {name!r}; known profiles: {known}") from None

    def resolve(
        self,
        profile: str,
        environment_overrides: Mapping[str, Any] | None = None,
        explicit_overrides: Mapping[str, Any] | None = None,
    ) -> T:
        """The profile, then ``SEQFLOW_*`` overrides from mlflow.env / the environment, then explicit ones."""
        return resolve_settings(self.get(profile), environment_overrides, explicit_overrides, self.apply)
