"""Configuration machinery both pipelines share: validated frozen sections, their one-line errors, seeds and
the execution options (``--set`` overrides and profiles: seqflow.core.overrides).

A pipeline declares its settings as sections decorated with :func:`config_section`: pydantic v2 dataclasses
(frozen, unknown fields refused, NaN and infinity refused for every float) whose bounds sit on the fields
(``Annotated[int, Field(ge=1)]``) and whose cross-field rules are ``model_validator`` methods raising
:class:`ConfigProblems`. They stay standard dataclasses, so ``dataclasses.asdict``/``replace`` keep working
for the code that hashes or copies them, and ``replace`` validates like the constructor does.

Whatever builds a config (a constructor, :func:`replace_settings`, :func:`validated`) reports a bad value as
one :class:`ConfigError` line that names the key and the allowed values; pydantic's own report never reaches
the user. Nothing here imports a pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Mapping, TypeVar

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo

from seqflow.core.errors import ConfigError

T = TypeVar("T")

# numpy and Keras take seeds in [0, 2**32 - 1]; anything else fails deep inside them (after runs opened).
SEED_MAX = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
# A share or a probability. (Counts use pydantic's PositiveInt and NonNegativeInt.)
Share = Annotated[float, Field(ge=0, le=1)]
# A dropout rate: 1 would drop everything.
DropRate = Annotated[float, Field(ge=0, lt=1)]

_MODEL_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class Allowed:
    """Annotated metadata: how an error message words a field's allowed values (instead of its bounds)."""

    text: str


class ConfigProblems(ValueError):
    """Raised by a section's ``model_validator``: each problem starts with the setting's name relative to the
    section ("epochs ..."), so the message can prefix where the section sits ("training.epochs ...")."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigProblems(problems)


def config_section(
    cls: type[T] | None = None,
    *,
    name: str = "",
    what: str = "configuration",
    label: Callable[[str], str] | None = None,
) -> Any:
    """Make ``cls`` a frozen, validated pydantic dataclass whose constructor raises :class:`ConfigError`.

    ``name`` is the section's key in its pipeline's config ("training"), so a section built on its own still
    names its settings as ``--set`` does; ``what`` names the config in messages ("invalid charlm
    configuration: ..."); ``label`` turns a field name into what the user typed (``--workers``).
    """

    def build(target: type[T]) -> type[T]:
        section = pydantic_dataclass(frozen=True, config=_MODEL_CONFIG)(target)
        section.__config_name__ = name  # type: ignore[attr-defined]
        section.__config_what__ = what  # type: ignore[attr-defined]
        section.__config_label__ = staticmethod(label) if label else None  # type: ignore[attr-defined]
        validating_init = section.__init__

        @functools.wraps(validating_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                validating_init(self, *args, **kwargs)
            except ValidationError as error:
                raise ConfigError(error_message(section, error, name)) from None

        section.__init__ = __init__  # type: ignore[method-assign]
        return section

    return build if cls is None else build(cls)


def validated(cls: type[T], data: Mapping[str, Any], owner: str | None = None) -> T:
    """``cls`` built from ``data`` (nested mappings for sections; strings are parsed), or a ConfigError whose
    keys are prefixed with ``owner`` ("training.per_architecture[lstm]"; default: the section's name)."""
    try:
        return cls.__pydantic_validator__.validate_python(dict(data))  # type: ignore[attr-defined]
    except ValidationError as error:
        prefix = getattr(cls, "__config_name__", "") if owner is None else owner
        raise ConfigError(error_message(cls, error, prefix)) from None


def revalidated(config: T) -> T:
    """``config`` checked again from its values, every section's validators included."""
    return validated(type(config), dataclasses.asdict(config))  # type: ignore[call-overload]


# --- messages ---------------------------------------------------------------------------------------------


def error_message(cls: type, error: ValidationError, owner: str = "") -> str:
    """pydantic's report as one line: each problem named by its ``--set`` key (under ``owner``)."""
    problems: list[str] = []
    for item in error.errors():
        where, annotation = _locate(cls, item["loc"], owner)
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, ConfigProblems):
            problems.extend(_join(where, problem) for problem in cause.problems)
        else:
            problems.append(_describe(item, where, annotation))
    return f"invalid {getattr(cls, '__config_what__', 'configuration')}: " + "; ".join(dict.fromkeys(problems))


def _join(owner: str, name: str) -> str:
    if not owner:
        return name
    return f"{owner}: {name}" if owner.endswith("]") else f"{owner}.{name}"


def _locate(cls: Any, loc: tuple[Any, ...], owner: str) -> tuple[str, Any]:
    """The dotted name of an error's location and the annotation of the field there (None: not a field)."""
    where, annotation, current = owner, None, cls
    for part in loc:
        fields = getattr(current, "__pydantic_fields__", None)
        if isinstance(part, int):
            where = f"{where}[{part}]"
            item = item_type(annotation)
            annotation, current = item, unwrap(item)[0] if item is not None else None
        elif fields and part in fields:
            label = getattr(current, "__config_label__", None)
            where = _join(where, label(part) if label else part)
            annotation = field_annotation(fields[part])
            current = unwrap(annotation)[0]
        elif part == loc[-1]:
            # An unknown field's name; other unknown parts are pydantic's own tags and say nothing to a user.
            where, annotation = _join(where, str(part)), None
    return where, annotation


def fields_of(cls: Any) -> dict[str, FieldInfo]:
    """A section's fields by name (pydantic's FieldInfo: annotation, bounds, default)."""
    return getattr(cls, "__pydantic_fields__", {})


def field_annotation(info: FieldInfo) -> Any:
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(the plain type, its constraints and Allowed texts, whether None is allowed) of an annotation."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            optional = optional or len(members) < len(typing.get_args(annotation))
            if len(members) != 1:
                return annotation, metadata, optional
            annotation = members[0]
        else:
            return annotation, metadata, optional


def item_type(annotation: Any) -> Any:
    base = unwrap(annotation)[0] if annotation is not None else None
    return typing.get_args(base)[0] if typing.get_origin(base) is tuple else None


def numeric_bounds(annotation: Any) -> dict[str, float]:
    """The bounds declared on a number field: a subset of ``{"ge", "gt", "le", "lt"}``."""
    bounds: dict[str, float] = {}
    for item in unwrap(annotation)[1]:
        # annotated_types' Ge, Gt, Le, Lt (what Field(ge=...) declares) and Interval all carry these attributes.
        bounds.update({name: getattr(item, name) for name in ("ge", "gt", "le", "lt") if getattr(item, name, None) is not None})
    return bounds


def requirement(annotation: Any, with_none: bool = True) -> str:
    """What a field accepts, in words: "in [0, 1)", "at least 1 (or none)", "one of ['pre', 'post']"."""
    base, metadata, optional = unwrap(annotation)
    allowed = [item.text for item in metadata if isinstance(item, Allowed)]
    if allowed:
        text = allowed[0]
    elif typing.get_origin(base) is Literal:
        text = f"one of {list(typing.get_args(base))}"
    elif base is bool:
        text = "true or false"
    elif base in (int, float):
        text = _range_text(numeric_bounds(annotation)) or ("an integer" if base is int else "a finite number")
    elif typing.get_origin(base) is tuple:
        text = f"a comma-separated list of values each {requirement(item_type(annotation))}"
    else:
        text = f"a {getattr(base, '__name__', base)}"
    return f"{text} (or none)" if optional and with_none else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _range_text(bounds: dict[str, float]) -> str:
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    high = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if low and high:
        return f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    if low:
        if low[1] == 0:
            return "not negative" if low[0] == "[" else "positive"
        return f"at least {_number(low[1])}" if low[0] == "[" else f"above {_number(low[1])}"
    if high:
        return f"at most {_number(high[1])}" if high[0] == "]" else f"below {_number(high[1])}"
    return ""


def _must(text: str) -> str:
    return f"must not be {text[4:]}" if text.startswith("not ") else f"must be {text}"


_TYPE_ERRORS = {"int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"}


def _describe(item: Mapping[str, Any], where: str, annotation: Any) -> str:
    value, kind = item.get("input"), item["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"unknown setting {where}"
    if kind in ("missing", "missing_argument"):
        return f"{where} is required"
    if annotation is None:
        return f"{where}: {item['msg']}"
    allowed = requirement(annotation)
    plain, _, optional = unwrap(annotation)
    if kind in _TYPE_ERRORS and (plain is int or not _non_finite(value)):
        # "nan" for a count is not a whole number, whatever else it is.
        within = requirement(annotation, with_none=False) + (", or none" if optional else "")
        return f"{where} must be {getattr(plain, '__name__', plain)} ({within}), got {value!r}"
    if kind == "finite_number" or _non_finite(value):
        number = requirement(annotation, with_none=False)
        return f"{where} must be {number if number == 'a finite number' else 'finite and ' + number}, got {value}"
    if kind.startswith(("greater_than", "less_than")):
        # A number was given, so "or none" would only distract.
        return f"{where} {_must(requirement(annotation, with_none=False))}, got {value}"
    return f"{where} {_must(allowed)}, got {value!r}"


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")


# --- shared sections --------------------------------------------------------------------------------------


@config_section
class RunSettings:
    """What every pipeline's config starts with; its sections follow in the subclass."""

    profile: str = "quick"
    # The one random seed for splits, initialisation and shuffling.
    seed: Seed = 42
    # Where datasets, vocabularies, padded arrays and contract reports are written.
    artifacts_dir: str = "seqflow_artifacts"

    def to_flat_dict(self) -> dict[str, Any]:
        """``{"section.field": value}`` for logging as MLflow params."""
        return flat_dict(self)


def flat_dict(config: Any) -> dict[str, Any]:
    """``{"section.field": value}`` of a config made of sections (PipelineConfig, CharLMConfig)."""
    flat: dict[str, Any] = {}
    for name, value in dataclasses.asdict(config).items():
        if isinstance(value, dict):
            flat.update({f"{name}.{key}": inner for key, inner in value.items()})
        else:
            flat[name] = value
    return flat


RunnerKind = Literal["sequential", "dask"]
RUNNERS: tuple[str, ...] = typing.get_args(RunnerKind)
# Worker processes of a local Dask cluster when ``--workers`` is not given.
DEFAULT_DASK_WORKERS = 2


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@config_section(what="execution settings", label=_flag)
class ExecutionConfig:
    """Where ``seqflow run`` trains the architectures; chosen on the command line, separate from the pipeline
    config because it changes where the steps run, never what they compute.

    ``sequential`` (the default) trains one architecture after another in this process. ``dask`` trains them
    in parallel with prefect-dask: on the scheduler at ``dask_address``, or on a local cluster of ``workers``
    processes (one task thread each) started for the run and stopped after it.
    """

    runner: RunnerKind = "sequential"
    # A running Dask scheduler, e.g. tcp://10.0.0.5:8786; its workers need seqflow installed and must reach
    # the Prefect API and the MLflow store. None: start a local cluster (dask runner only).
    dask_address: str | None = None
    # Worker processes of the local cluster; None: DEFAULT_DASK_WORKERS.
    workers: Annotated[int, Field(ge=1)] | None = None
    # TensorFlow intra-op and inter-op threads in each local worker (TF_NUM_INTRAOP_THREADS /
    # TF_NUM_INTEROP_THREADS), so N workers do not each claim every core. None: the cores divided by the workers.
    tf_threads: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _flags_fit_the_runner(self) -> ExecutionConfig:
        problems: list[str] = []
        if self.runner != "dask":
            given = [
                flag
                for flag, value in (("--dask-address", self.dask_address), ("--workers", self.workers), ("--tf-threads", self.tf_threads))
                if value is not None
            ]
            if given:
                problems.append(f"{' and '.join(given)} given without --runner dask")
        elif self.dask_address is not None:
            if not self.dask_address.strip():
                problems.append("--dask-address may not be empty")
            if self.workers is not None or self.tf_threads is not None:
                problems.append(
                    f"--workers and --tf-threads size a local cluster; the scheduler at {self.dask_address} "
                    "has its own workers"
                )
        raise_problems(problems)
        return self

    @property
    def local_workers(self) -> int:
        """Worker processes of the local cluster."""
        return self.workers or DEFAULT_DASK_WORKERS

    def local_tf_threads(self, cpu_count: int | None) -> int:
        """TensorFlow threads per local worker: as set, or this machine's cores shared out among the workers."""
        return self.tf_threads or max(1, (cpu_count or 1) // self.local_workers)
