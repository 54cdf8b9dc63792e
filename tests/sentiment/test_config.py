"""Typed configuration: profiles, overrides, validation, and no side effects on import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from seqflow.core.overrides import parse_assignments
from seqflow.sentiment.config import ALL_ARCHITECTURES, ArchitectureOverride, TrainingConfig, with_overrides
from seqflow.sentiment.profiles import get_profile
from seqflow.core.errors import ConfigError
from seqflow.core.settings import load_settings

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
    # Its dropout sat on the SimpleRNN cells' inputs, not on the embedding or the head.
    assert (seed_001.training.recurrent_input_dropout, seed_001.training.dropout) == (0.2, 0.0)
    # The seeds' Sequential models had no mask, and seeds 002/004 used validation_split=0.2.
    for name in SEED_PROFILES:
        assert get_profile(name).training.mask_padding is False, name
    for name in ("seed-002-simple-rnn", "seed-004-embedding", "seed-004-simple-rnn", "seed-004-stacked-bilstm"):
        assert get_profile(name).data.validation_fraction == 0.2, name


def test_quick_profile_splits_every_review_and_caps_only_the_recurrent_models_training_rows():
    quick = get_profile("quick")
    assert quick.data.limit is None
    for architecture in ("embedding_pool", "nbsvm"):
        assert quick.training.for_architecture(architecture).max_train_rows is None
    assert quick.training.for_architecture("nbsvm").bigram_buckets > 0
    recurrent = [a for a in quick.training.architectures if a not in ("embedding_pool", "nbsvm")]
    assert recurrent and all(quick.training.for_architecture(a).max_train_rows for a in recurrent)


def test_best_profile_gives_architectures_their_own_settings():
    best = get_profile("best")
    assert best.tokenisation.max_length == 500 and best.training.mask_padding
    pooled = best.training.for_architecture("embedding_pool")
    assert pooled.bigram_buckets > 0 and pooled.per_architecture == ()
    assert best.training.for_architecture("lstm").bigram_buckets == 0
    assert best.training.for_architecture("stacked_rnn").learning_rate < best.training.learning_rate


def test_per_architecture_overrides_in_both_text_forms():
    base = get_profile("quick")
    changed = with_overrides(
        base,
        {
            "training.per_architecture": "stacked_rnn:learning_rate=3e-4;epochs=10, simple_rnn:early_stopping_patience=4",
            "training.per_architecture.stacked_rnn.lr_schedule": "cosine",
            "training.per_architecture.embedding_pool.bigram_buckets": "1000",
        },
    )
    stacked = changed.training.for_architecture("stacked_rnn")
    assert (stacked.learning_rate, stacked.epochs, stacked.lr_schedule) == (3e-4, 10, "cosine")
    assert changed.training.for_architecture("simple_rnn").early_stopping_patience == 4
    assert changed.training.for_architecture("embedding_pool").bigram_buckets == 1000
    assert changed.training.for_architecture("lstm") == dataclasses.replace(changed.training, per_architecture=())
    # Replacing the list dropped quick's own overrides in `changed` only (quick caps lstm's training rows).
    assert base.training.for_architecture("lstm").max_train_rows == 3_000
    # Logged as the text --set reads back.
    logged = changed.to_flat_dict()["training.per_architecture"]
    assert with_overrides(base, {"training.per_architecture": logged}).training == changed.training


def test_child_run_params_are_the_settings_each_architecture_trained_with():
    best = get_profile("best")
    pooled = best.architecture_params("embedding_pool")
    # The runs table must show the bag model's own rate and epochs, not the shared defaults it overrode.
    assert pooled["architecture"] == "embedding_pool"
    assert pooled["training.learning_rate"] == best.training.for_architecture("embedding_pool").learning_rate != (
        best.training.learning_rate
    )
    assert pooled["training.bigram_buckets"] > 0
    assert pooled["training.per_architecture"].startswith("embedding_pool:") and "lstm" not in pooled["training.per_architecture"]
    lstm = best.architecture_params("lstm")
    assert lstm["training.embedding_dim"] == 32 and lstm["training.bigram_buckets"] == 0
    # Every other setting is logged as for the parent run.
    assert set(pooled) == set(best.to_flat_dict()) | {"architecture"}
    assert best.training.per_architecture  # not mutated


def test_new_training_fields_take_text():
    changed = with_overrides(
        get_profile("quick"),
        {
            "training.l2": "1e-5",
            "training.spatial_dropout": "0.25",
            "training.lr_schedule": "cosine",
            "training.warmup_epochs": "1",
            "training.warm_start_model_uri": "models:/seqflow-imdb-sentiment/3",
            "training.warm_start_trainable": "false",
        },
    )
    training = changed.training
    assert (training.l2, training.spatial_dropout, training.lr_schedule, training.warmup_epochs) == (1e-5, 0.25, "cosine", 1)
    assert training.warm_start_model_uri == "models:/seqflow-imdb-sentiment/3" and not training.warm_start_trainable
    assert TrainingConfig(dropout=0.4).effective_spatial_dropout == 0.4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"training.per_architecture": "transformer:epochs=3"}, "unknown architectures \\['transformer'\\]"),
        ({"training.per_architecture": "lstm:colour=red"}, "'colour' cannot be set per architecture"),
        ({"training.per_architecture": "lstm epochs=3"}, "ARCH:field=value"),
        ({"training.per_architecture": "lstm:epochs"}, "ARCH:field=value"),
        ({"training.per_architecture.lstm.epochs": "many"}, "per_architecture\\[lstm\\]: epochs must be int"),
        ({"training.per_architecture.lstm": "3"}, "training.per_architecture.ARCH.field=value"),
        ({"training.per_architecture": "lstm:epochs=2,lstm:epochs=3"}, "more than once"),
        ({"training.per_architecture.lstm.dropout": "1.5"}, "per_architecture\\[lstm\\]: dropout must be in"),
        ({"training.per_architecture.embedding_pool.token_dropout": "1"}, "token_dropout must be in \\[0, 1\\)"),
        ({"training.bigram_buckets": "100"}, "applies to embedding_pool and nbsvm only"),
        ({"training.lr_schedule": "linear"}, "must be one of"),
        ({"training.warmup_epochs": "2"}, "lr_schedule=cosine only"),
        ({"training.l2": "-1"}, "l2 must not be negative"),
        ({"training.min_learning_rate": "0.5"}, "min_learning_rate"),
        ({"training.early_stopping_patience": "0"}, "at least 1"),
    ],
)
def test_bad_training_levers_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(get_profile("quick"), overrides)


def test_bigrams_may_be_set_for_embedding_pool_alone():
    config = with_overrides(
        get_profile("quick"), {"training.architectures": "embedding_pool", "training.bigram_buckets": "100"}
    )
    assert config.training.for_architecture("embedding_pool").bigram_buckets == 100
    assert ArchitectureOverride("lstm").epochs is None


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
        "import seqflow.cli, seqflow.sentiment.config, seqflow.charlm.config, seqflow.core.settings, seqflow.core.tracking, seqflow.sentiment.steps\n"
        "import seqflow.flows.sentiment, seqflow.flows.validate, seqflow.tasks.sentiment, seqflow.data_contracts.raw_reviews\n"
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


def test_trigrams_need_hashed_buckets_and_an_order_of_two_or_three():
    config = with_overrides(
        get_profile("best"), {"training.per_architecture.embedding_pool.max_ngram": "3"}
    )
    assert config.training.for_architecture("embedding_pool").max_ngram == 3
    with pytest.raises(ConfigError, match="max_ngram must be 2"):
        with_overrides(get_profile("best"), {"training.per_architecture.embedding_pool.max_ngram": "4"})
    with pytest.raises(ConfigError, match="max_ngram=3 hashes n-grams into bigram_buckets"):
        with_overrides(get_profile("quick"), {"training.architectures": "embedding_pool", "training.max_ngram": "3"})
