"""Typed hyperparameter search spaces, for any pipeline: ``{"section.field": parameter}`` where a parameter is a
float or int range (optionally on a log scale) or a list of choices.

Each pipeline declares a default space per architecture (``seqflow.sentiment.tuning``, ``seqflow.charlm.tuning``);
``seqflow tune --space FILE`` replaces it with one read from YAML, JSON or TOML. A space is checked twice before
any trial runs: its own shape (pydantic: bounds in order, a log range above 0, choices present) and every value
it can take against the pipeline's config (each bound and choice applied to the base config), so a bad space is
one line naming the parameter, never a failed trial.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from seqflow.core.errors import ConfigError

# Suffixes a space or profile file may have, and how each is read.
STRUCTURED_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


class _Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Parameter):
    """A real number between ``low`` and ``high``; ``log``: sampled evenly in log space (learning rates)."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        return self

    def edges(self) -> list[Any]:
        return [self.low, self.high]


class IntRange(_Parameter):
    """An integer between ``low`` and ``high`` (both included), every ``step``; ``log``: evenly in log space."""

    type: Literal["int"]
    low: int
    high: int
    step: Annotated[int, Field(ge=1)] = 1
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log range needs low > 0 and step 1")
        return self

    def edges(self) -> list[Any]:
        return [self.low, self.high]


class Choices(_Parameter):
    """One of ``choices`` (numbers, strings, booleans or null)."""

    type: Literal["categorical"]
    choices: Annotated[list[Union[bool, int, float, str, None]], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self) -> Choices:
        if len(set(map(json.dumps, self.choices))) != len(self.choices):
            raise ValueError("choices must be distinct")
        return self

    def edges(self) -> list[Any]:
        return list(self.choices)


Parameter = Annotated[Union[FloatRange, IntRange, Choices], Field(discriminator="type")]
_SPACE = TypeAdapter(dict[str, Parameter])


def parse_space(raw: Any, origin: str) -> dict[str, Any]:
    """A space from its plain form (a mapping of setting key -> parameter), or a ConfigError naming the first
    problem in one line."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{origin}: a search space is a non-empty mapping of setting -> parameter, e.g. "
                          "training.learning_rate: {type: float, low: 0.0001, high: 0.01, log: true}")
    try:
        return dict(_SPACE.validate_python(dict(raw)))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][:1])
        # pydantic words value errors "Value error, low (...) must be ..."; the parameter's name says where.
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "union_tag_invalid" or first["type"] == "union_tag_not_found":
            message = "type must be float, int or categorical"
        elif len(first["loc"]) > 2:
            message = f"{first['loc'][-1]}: {message}"
        raise ConfigError(f"{origin}: parameter {where!r}: {message}") from None


def read_structured_file(path: str | Path, what: str) -> Any:
    """The content of a YAML, JSON or TOML file, or a one-line ConfigError saying why it cannot be read."""
    path = Path(path)
    if path.suffix.lower() not in STRUCTURED_SUFFIXES:
        raise ConfigError(f"{what} {str(path)!r}: expected a {', '.join(STRUCTURED_SUFFIXES)} file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {error.strerror or error}") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        if path.suffix.lower() == ".toml":
            import tomllib

            return tomllib.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as error:  # noqa: BLE001 - every parser's own error class, as one line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{what} {str(path)!r} is not valid {path.suffix.lstrip('.').upper()}: {reason}") from None


def load_space(path: str | Path) -> dict[str, Any]:
    """The space in ``path`` (YAML, JSON or TOML)."""
    return parse_space(read_structured_file(path, "search space"), f"search space {str(path)!r}")


def check_space_values(space: Mapping[str, Any], allowed_sections: tuple[str, ...], apply: Callable[[Mapping[str, Any]], Any], origin: str) -> None:
    """Refuse a space that names a setting outside ``allowed_sections`` or can take a value the pipeline's
    config refuses: ``apply`` (a config with overrides applied) is tried on each bound and choice."""
    for key in space:
        if key.partition(".")[0] not in allowed_sections:
            raise ConfigError(f"{origin}: parameter {key!r}: only {', '.join(s + '.*' for s in allowed_sections)} "
                              "settings can be searched (data and seed fix the validation split)")
    # Each value is tried with the other parameters at their first value: settings that only fit together
    # (trigrams need buckets) are checked as the search will sample them.
    first = {key: parameter.edges()[0] for key, parameter in space.items()}
    for key, parameter in space.items():
        for value in parameter.edges():
            try:
                apply({**first, key: value})
            except ConfigError as error:
                raise ConfigError(f"{origin}: parameter {key!r} can take {value!r}, which the config refuses: {error}") from None


def distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """The Optuna distribution of each parameter: what ``study.ask`` samples from."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    made: dict[str, Any] = {}
    for key, parameter in space.items():
        if isinstance(parameter, FloatRange):
            made[key] = FloatDistribution(parameter.low, parameter.high, log=parameter.log)
        elif isinstance(parameter, IntRange):
            made[key] = IntDistribution(parameter.low, parameter.high, step=parameter.step, log=parameter.log)
        else:
            made[key] = CategoricalDistribution(parameter.choices)
    return made


def space_to_plain(space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The space as plain data (what ``--space FILE`` reads back), for printing and logging."""
    return {key: parameter.model_dump() for key, parameter in space.items()}


def space_digest(space: Mapping[str, Any]) -> str:
    """Names a space by content: a study resumed with another space is refused."""
    import hashlib

    return hashlib.sha256(json.dumps(space_to_plain(space), sort_keys=True).encode()).hexdigest()[:16]


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
