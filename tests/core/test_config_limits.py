"""Every numeric setting refuses NaN, infinity and values outside its bounds with one line naming the key; seeds
are range-checked before anything runs; pydantic's own report never reaches the user (issue 23, items 7, 8, 18).

The numeric keys are enumerated from the config classes, so a field added later is covered without editing
this file, and a numeric field without bounds fails here until it gets some.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqflow.charlm.config import CharLMConfig, resolve_charlm_config
from seqflow.core.config import (
    SEED_MAX,
    ExecutionConfig,
    field_annotation,
    fields_of,
    item_type,
    numeric_bounds,
    unwrap,
)
from seqflow.core.errors import ConfigError
from seqflow.sentiment.config import (
    ArchitectureOverride,
    ArchitectureSettings,
    PipelineConfig,
    TrainingConfig,
    with_overrides,
)
from seqflow.sentiment.profiles import get_profile

# Numeric settings that are bounded only by being finite, and why.
FINITE_ONLY = {
    # A perplexity margin: negative lets a slightly worse challenger through; perplexities have no upper end.
    ("charlm", "promotion.min_improvement"),
}


def _numeric(annotation: Any) -> tuple[type, Any] | None:
    """(int or float, the annotation that holds the bounds) of a number or a tuple of numbers, else None."""
    plain = unwrap(annotation)[0]
    if plain in (int, float):
        return plain, annotation
    item = item_type(annotation)
    if item is not None and unwrap(item)[0] in (int, float):
        return unwrap(item)[0], item
    return None


def _numeric_keys(pipeline: str, config_class: type) -> list[tuple[str, str, type, Any]]:
    """(pipeline, --set key, int or float, bounded annotation) of every numeric setting, per-architecture too."""
    keys = []
    for name, info in fields_of(config_class).items():
        annotation = field_annotation(info)
        section = unwrap(annotation)[0]
        if fields_of(section):
            for field_name, field_info in fields_of(section).items():
                numeric = _numeric(field_annotation(field_info))
                if numeric:
                    keys.append((pipeline, f"{name}.{field_name}", *numeric))
        elif _numeric(annotation):
            keys.append((pipeline, name, *_numeric(annotation)))
    return keys


SENTIMENT_KEYS = _numeric_keys("sentiment", PipelineConfig)
CHARLM_KEYS = _numeric_keys("charlm", CharLMConfig)
PER_ARCHITECTURE_KEYS = [
    ("sentiment", f"training.per_architecture.lstm.{name}", *_numeric(field_annotation(info)))
    for name, info in fields_of(ArchitectureOverride).items()
    if _numeric(field_annotation(info))
]
ALL_KEYS = SENTIMENT_KEYS + CHARLM_KEYS + PER_ARCHITECTURE_KEYS


def _apply(pipeline: str, key: str, value: Any) -> Any:
    if pipeline == "charlm":
        return resolve_charlm_config("quick", None, {key: value})
    return with_overrides(get_profile("quick"), {key: value})


@pytest.mark.parametrize(
    ("pipeline", "key", "value", "message"),
    [
        ("sentiment", "tokenisation.padding", "left", "must be one of"),
        ("sentiment", "tokenisation.max_length", "long", "must be int"),
        ("sentiment", "tokenisation.colour", "red", "unknown setting"),
        ("sentiment", "optimiser.lr", "1", "unknown config section"),
        ("sentiment", "training.architectures", "lstm,transformer", "unknown architectures"),
        ("sentiment", "data.validation_fraction", "0.9", "validation_fraction"),
        ("charlm", "training.layers", "3", "layers must be 1 or 2"),
        ("charlm", "training.architectures", "char_transformer", "unknown or no architectures"),
        ("charlm", "training.seq_length", "0", "seq_length must be positive"),
        ("charlm", "data.validation_fraction", "0.7", "validation_fraction"),
        ("charlm", "tokenisation.max_length", "3", "unknown config section"),
        ("charlm", "training.colour", "red", "unknown setting"),
        ("charlm", "training.epochs", "many", "must be int"),
    ],
)
def test_bad_overrides_name_the_problem(pipeline, key, value, message):
    with pytest.raises(ConfigError, match=message):
        _apply(pipeline, key, value)


def _named(key: str) -> str:
    """How a message names the key: per-architecture values as the item they belong to."""
    if key.startswith("training.per_architecture."):
        _, _, architecture, name = key.split(".")
        return f"training.per_architecture[{architecture}]: {name}"
    return key


def test_the_enumeration_finds_the_settings_it_must_cover():
    keys = {key for _, key, _, _ in ALL_KEYS}
    assert {"seed", "training.l2", "training.learning_rate", "training.epochs", "data.limit", "sampling.seeds",
            "sampling.temperatures", "training.max_training_minutes", "training.per_architecture.lstm.l2"} <= keys
    assert len(SENTIMENT_KEYS) > 30 and len(CHARLM_KEYS) > 20


@pytest.mark.parametrize(("pipeline", "key", "kind", "annotation"), ALL_KEYS, ids=[f"{p}:{k}" for p, k, _, _ in ALL_KEYS])
def test_every_numeric_setting_declares_bounds(pipeline, key, kind, annotation):
    assert numeric_bounds(annotation) or (pipeline, key) in FINITE_ONLY, f"{pipeline} {key} has no bounds"


@pytest.mark.parametrize(("pipeline", "key", "kind", "annotation"), ALL_KEYS, ids=[f"{p}:{k}" for p, k, _, _ in ALL_KEYS])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", " +Infinity "])
def test_every_numeric_setting_refuses_non_finite_text(pipeline, key, kind, annotation, text):
    with pytest.raises(ConfigError) as refused:
        _apply(pipeline, key, text)
    message = str(refused.value)
    assert _named(key) in message and "\n" not in message
    assert ("finite" if kind is float else "must be int") in message


@pytest.mark.parametrize(("pipeline", "key", "kind", "annotation"), ALL_KEYS, ids=[f"{p}:{k}" for p, k, _, _ in ALL_KEYS])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_numeric_setting_refuses_non_finite_numbers(pipeline, key, kind, annotation, value):
    """Typed values, as a stored execution's flat config hands them back."""
    with pytest.raises(ConfigError, match="finite"):
        _apply(pipeline, key, value)


def _outside(kind: type, bounds: dict[str, float]) -> st.SearchStrategy:
    numbers = st.integers if kind is int else lambda **b: st.floats(allow_nan=False, allow_infinity=False, **b)
    options = []
    if "ge" in bounds:
        options.append(numbers(max_value=math.ceil(bounds["ge"]) - 1 if kind is int else math.nextafter(bounds["ge"], -math.inf)))
    if "gt" in bounds:
        options.append(numbers(max_value=math.floor(bounds["gt"]) if kind is int else bounds["gt"]))
    if "le" in bounds:
        options.append(numbers(min_value=math.floor(bounds["le"]) + 1 if kind is int else math.nextafter(bounds["le"], math.inf)))
    if "lt" in bounds:
        options.append(numbers(min_value=math.ceil(bounds["lt"]) if kind is int else bounds["lt"]))
    return st.one_of(options)


BOUNDED_KEYS = [k for k in ALL_KEYS if numeric_bounds(k[3])]


@pytest.mark.parametrize(("pipeline", "key", "kind", "annotation"), BOUNDED_KEYS, ids=[f"{p}:{k}" for p, k, _, _ in BOUNDED_KEYS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_numeric_setting_refuses_values_outside_its_bounds(pipeline, key, kind, annotation, data):
    value = data.draw(_outside(kind, numeric_bounds(annotation)), label="value")
    as_text = data.draw(st.booleans(), label="as text")
    with pytest.raises(ConfigError) as refused:
        _apply(pipeline, key, repr(value) if as_text else value)
    message = str(refused.value)
    assert _named(key) in message and "\n" not in message, message
    assert "must" in message and "got" in message


def test_a_setting_inside_its_bounds_is_accepted_as_text_and_typed():
    assert with_overrides(get_profile("quick"), {"training.l2": "1e-4"}).training.l2 == 1e-4
    assert resolve_charlm_config("quick", None, {"sampling.seeds": f"0,{SEED_MAX}"}).sampling.seeds == (0, SEED_MAX)
    assert with_overrides(get_profile("quick"), {"seed": SEED_MAX}).seed == SEED_MAX


# --- item 7: a non-finite setting never reaches training -------------------------------------------------


def test_nan_l2_is_refused_instead_of_silently_ignored():
    with pytest.raises(ConfigError, match=r"training\.l2 must be finite and not negative, got nan"):
        with_overrides(get_profile("quick"), {"training.l2": "nan"})


# --- item 18: messages name the setting that is wrong, and only that one -----------------------------------


def test_zero_epochs_names_epochs_alone():
    with pytest.raises(ConfigError) as refused:
        with_overrides(get_profile("quick"), {"training.epochs": "0"})
    assert str(refused.value) == "invalid configuration: training.epochs must be positive, got 0"
    with pytest.raises(ConfigError) as refused:
        resolve_charlm_config("quick", None, {"training.epochs": "0"})
    assert str(refused.value) == "invalid charlm configuration: training.epochs must be positive, got 0"


def test_nan_learning_rate_blames_the_learning_rate_not_its_minimum():
    with pytest.raises(ConfigError) as refused:
        with_overrides(get_profile("quick"), {"training.learning_rate": "nan"})
    assert "training.learning_rate must be finite" in str(refused.value)
    assert "min_learning_rate" not in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        with_overrides(get_profile("best"), {"training.per_architecture.stacked_rnn.learning_rate": "nan"})
    assert "per_architecture[stacked_rnn]: learning_rate must be finite" in str(refused.value)
    assert "min_learning_rate" not in str(refused.value)


def test_a_message_says_what_the_setting_accepts():
    cases = {
        "training.dropout": ("1.5", "training.dropout must be in [0, 1), got 1.5"),
        "data.validation_fraction": ("0.9", "data.validation_fraction must be in (0, 0.5), got 0.9"),
        "tokenisation.padding": ("left", "tokenisation.padding must be one of ['pre', 'post'], got 'left'"),
        "training.early_stopping_patience": ("soon", "training.early_stopping_patience must be int (at least 1, or none), got 'soon'"),
        "training.mask_padding": ("maybe", "training.mask_padding must be true or false, got 'maybe'"),
    }
    for key, (value, expected) in cases.items():
        with pytest.raises(ConfigError) as refused:
            with_overrides(get_profile("quick"), {key: value})
        assert str(refused.value) == f"invalid configuration: {expected}"


# --- item 8: seeds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, "4294967296", "-1"])
def test_seeds_outside_what_numpy_and_keras_take_are_refused(seed):
    with pytest.raises(ConfigError, match=r"seed must be in \[0, 4294967295\]"):
        with_overrides(get_profile("quick"), {"seed": seed})
    with pytest.raises(ConfigError, match=r"seed must be in \[0, 4294967295\]"):
        resolve_charlm_config("quick", None, {"seed": seed})


def test_a_bad_seed_from_the_environment_names_the_variable_and_a_command_line_seed_replaces_it():
    with pytest.raises(ConfigError, match=r"seed must be in .*got -5 \(set by SEQFLOW_SEED in the env file"):
        resolve_charlm_config("quick", {"seed": "-5"}, {"training.epochs": "2"})
    assert resolve_charlm_config("quick", {"seed": "-5"}, {"seed": "3"}).seed == 3


@pytest.mark.parametrize(
    ("command", "env_line"),
    [(["run", "--seed", "-1"], ""), (["charlm", "run", "--seed", "4294967296"], ""), (["validate"], "SEQFLOW_SEED=-1\n")],
)
def test_the_cli_refuses_a_bad_seed_in_one_line_before_opening_the_store(tmp_path, capsys, command, env_line):
    from seqflow.cli import main

    env_file = tmp_path / "team.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'mlflow.db'}\n{env_line}")
    code = main(["--env-file", str(env_file), *command])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("seqflow: error: invalid ") and "seed must be in [0, 4294967295]" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()


# --- pydantic stays inside: constructors, replace, unknown fields ---------------------------------------------


def test_building_a_section_by_hand_raises_the_same_one_line_error():
    with pytest.raises(ConfigError, match=r"^invalid configuration: training\.epochs must be positive, got 0$"):
        TrainingConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"training\.learning_rate must be finite"):
        dataclasses.replace(TrainingConfig(), learning_rate=math.nan)
    with pytest.raises(ConfigError, match="unknown setting training.colour"):
        TrainingConfig(colour="red")
    with pytest.raises(ConfigError, match=r"^invalid execution settings: --workers must be at least 1, got 0$"):
        ExecutionConfig(runner="dask", workers=0)


def test_configs_are_frozen_and_overrides_leave_their_inputs_alone():
    base = get_profile("best")
    overrides = {"training.per_architecture.lstm.epochs": "3", "seed": "5"}
    before = (dataclasses.asdict(base), dict(overrides))
    changed = with_overrides(base, overrides)
    assert (dataclasses.asdict(base), dict(overrides)) == before
    assert changed.training.for_architecture("lstm").epochs == 3 and changed.seed == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.training.epochs = 1  # type: ignore[misc]


def test_per_architecture_fields_are_the_training_fields_with_the_same_bounds():
    settable = {name: info for name, info in fields_of(ArchitectureOverride).items() if name != "architecture"}
    assert list(settable) == list(fields_of(ArchitectureSettings))
    for name, info in settable.items():
        training_field = field_annotation(fields_of(TrainingConfig)[name])
        assert numeric_bounds(field_annotation(info)) == numeric_bounds(training_field), name
        assert getattr(ArchitectureOverride("lstm"), name) is None
