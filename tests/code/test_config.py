"""Typed configuration: profiles, overrides, validation, and no side effects on import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from seqflow.config import PROFILES, ALL_ARCHITECTURES, get_profile, parse_assignments, with_overrides
from seqflow.errors import ConfigError
from seqflow.settings import load_settings

SEED_PROFILES = (
    "seed-000-bilstm",
    "seed-001-stacked-rnn",
    "seed-002-simple-rnn",
    "seed-004-embedding",
    "seed-004-simple-rnn",
    "seed-004-stacked-bilstm",
)


def test_quick_full_and_every_seed_profile_exist():
    for name in ("quick", "full", *SEED_PROFILES):
        assert get_profile(name).profile == name


def test_seed_profiles_reproduce_seed_settings():
    seed_004_rnn = get_profile("seed-004-simple-rnn")
    assert (seed_004_rnn.tokenisation.max_length, seed_004_rnn.tokenisation.padding) == (500, "post")
    assert seed_004_rnn.training.mask_padding is False  # the seed did not mask, and stayed at 50%
    seed_001 = get_profile("seed-001-stacked-rnn")
    assert (seed_001.tokenisation.max_length, seed_001.tokenisation.padding) == (80, "pre")
    assert seed_001.training.learning_rate == pytest.approx(1e-4)


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match="quick"):
        get_profile("fastest")


def test_overrides_are_typed_and_do_not_mutate():
    base = get_profile("quick")
    before = dataclasses.asdict(base)
    changed = with_overrides(
        base,
        {
            "tokenisation.max_length": "321",
            "tokenisation.padding": "pre",
            "data.limit": "none",
            "seed": "7",
            "training.architectures": "lstm,bilstm",
            "training.early_stopping_patience": "None",
            "training.mask_padding": "false",
        },
    )
    assert dataclasses.asdict(base) == before
    assert changed.tokenisation.max_length == 321 and changed.tokenisation.padding == "pre"
    assert changed.data.limit is None and changed.seed == 7
    assert changed.training.architectures == ("lstm", "bilstm")
    assert changed.training.early_stopping_patience is None and changed.training.mask_padding is False


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tokenisation.padding", "left", "must be one of"),
        ("tokenisation.max_length", "long", "must be int"),
        ("tokenisation.colour", "red", "unknown setting"),
        ("optimiser.lr", "1", "unknown config section"),
        ("training.architectures", "lstm,transformer", "unknown architectures"),
        ("data.validation_fraction", "0.9", "validation_fraction"),
    ],
)
def test_bad_overrides_name_the_problem(key, value, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(get_profile("quick"), {key: value})


def test_parse_assignments_rejects_items_without_equals():
    assert parse_assignments(["a.b=1", " c = x=y "]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="section.field=value"):
        parse_assignments(["tokenisation.max_length"])


def test_flat_dict_has_every_setting():
    flat = get_profile("full").to_flat_dict()
    assert flat["tokenisation.max_length"] == 400 and flat["profile"] == "full"
    assert set(flat["training.architectures"]) == set(ALL_ARCHITECTURES)


def test_settings_file_then_environment(tmp_path):
    env_file = tmp_path / "team.env"
    env_file.write_text("MLFLOW_TRACKING_URI=sqlite:///team.db\nMLFLOW_EXPERIMENT_NAME=from-file\nSEQFLOW_SEED=11\n")
    settings = load_settings(env_file, environ={"MLFLOW_EXPERIMENT_NAME": "from-env"})
    assert settings.tracking_uri == "sqlite:///team.db"
    assert settings.experiment_name == "from-env"
    assert dict(settings.config_overrides) == {"seed": "11"}
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.env", environ={})


def test_importing_seqflow_has_no_side_effects(tmp_path):
    """Importing every module sets no tracking URI, reads no env file and configures no logging."""
    code = (
        "import logging, os\n"
        # Libraries may configure their own logging on import (Prefect does); seqflow must add nothing.
        "import prefect, mlflow, great_expectations\n"
        "handlers_before = list(logging.getLogger().handlers)\n"
        "import seqflow.cli, seqflow.config, seqflow.settings, seqflow.tracking, seqflow.steps\n"
        "import seqflow.flows.sentiment, seqflow.flows.validate, seqflow.tasks.data, seqflow.data_contracts.raw_reviews\n"
        # Prefect installs its console handler lazily when flows are defined; anything else would be ours.
        "added = [h for h in logging.getLogger().handlers if h not in handlers_before]\n"
        "assert all(type(h).__module__.startswith('prefect.') for h in added), added\n"
        "assert 'MLFLOW_TRACKING_URI' not in os.environ\n"
        "assert not mlflow.tracking._tracking_service.utils.is_tracking_uri_set()\n"
        "print('clean')\n"
    )
    (tmp_path / "mlflow.env").write_text("MLFLOW_TRACKING_URI=sqlite:///should-not-be-read.db\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "clean" in result.stdout
    assert not (tmp_path / "should-not-be-read.db").exists()
