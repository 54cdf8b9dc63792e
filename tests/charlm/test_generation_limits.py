"""Issue 23 item 4: character generation is bounded and refuses non-finite temperatures, in the CLI and in the
registered pyfunc (so ``seqflow serve`` is bounded too)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from seqflow.charlm.generate import (
    DEFAULT_MAX_GENERATION_LENGTH,
    MAX_GENERATION_LENGTH_VARIABLE,
    CharGenerationModel,
    CharGenerator,
    max_generation_length,
)
from seqflow.core.errors import ConfigError
from seqflow.sentiment.serving import InputRefused

VOCABULARY = ["\ufffd", "\n", *"abcdefghij"]


@pytest.fixture(scope="module")
def generation_model() -> CharGenerationModel:
    from seqflow.models.charlm import CharLMSpec, build_char_model, build_step_model

    model = build_char_model("char_gru", CharLMSpec(vocab_size=len(VOCABULARY), embedding_dim=4, rnn_units=8))
    pyfunc = CharGenerationModel()
    # What load_context sets from the registered artifacts.
    pyfunc._generator = CharGenerator(build_step_model(model), VOCABULARY)
    return pyfunc


def generate(model: CharGenerationModel, **columns: list) -> pd.DataFrame:
    return model.predict(None, pd.DataFrame(columns))


@pytest.mark.parametrize("length", [3_000_000_000, DEFAULT_MAX_GENERATION_LENGTH + 1, 10**30])
def test_pyfunc_refuses_a_length_over_the_maximum_naming_the_setting(generation_model, length: int) -> None:
    with pytest.raises(InputRefused, match=MAX_GENERATION_LENGTH_VARIABLE):
        generate(generation_model, prefix=["abc"], length=[length], temperature=[1.0])


@pytest.mark.parametrize("temperature", [math.inf, -math.inf, -0.5])
def test_pyfunc_refuses_temperatures_that_are_not_finite_or_negative(generation_model, temperature: float) -> None:
    with pytest.raises(InputRefused, match="temperature must be a finite number"):
        generate(generation_model, prefix=["abc"], length=[5], temperature=[temperature])


def test_pyfunc_refuses_a_batch_asking_for_more_than_the_maximum_in_all(generation_model, monkeypatch) -> None:
    monkeypatch.setenv(MAX_GENERATION_LENGTH_VARIABLE, "50")
    with pytest.raises(InputRefused, match="70 characters in all"):
        generate(generation_model, prefix=["ab", "cd"], length=[35, 35], temperature=[1.0, 1.0])
    generated = generate(generation_model, prefix=["ab", "cd"], length=[25, 25], temperature=[1.0, 0.0], seed=[1, 1])
    assert [len(text) for text in generated["continuation"]] == [25, 25]


def test_pyfunc_refuses_an_infinite_length_as_input_not_a_traceback(generation_model) -> None:
    with pytest.raises(InputRefused, match="whole numbers"):
        generate(generation_model, prefix=["abc"], length=[math.inf], temperature=[1.0])


def test_maximum_comes_from_the_environment_and_is_checked() -> None:
    assert max_generation_length({}) == DEFAULT_MAX_GENERATION_LENGTH
    assert max_generation_length({MAX_GENERATION_LENGTH_VARIABLE: "123"}) == 123
    for bad in ("0", "-5", "lots", str(2**31)):
        with pytest.raises(ConfigError, match=MAX_GENERATION_LENGTH_VARIABLE):
            max_generation_length({MAX_GENERATION_LENGTH_VARIABLE: bad})


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--length", "3000000000", MAX_GENERATION_LENGTH_VARIABLE),
        ("--temperature", "nan", "finite"),
        ("--temperature", "inf", "finite"),
    ],
)
def test_cli_generate_refuses_in_one_line_before_touching_the_store(
    tmp_path: Path, monkeypatch, capsys, option: str, value: str, named: str
) -> None:
    from seqflow.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["generate", option, value]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and named in error and option in error, error
    assert not (tmp_path / "mlflow.db").exists()
