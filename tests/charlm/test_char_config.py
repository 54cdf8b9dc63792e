"""CharLM config, settings names and the lower-is-better promotion gate."""

from __future__ import annotations

import pytest

from seqflow.charlm.config import CHARLM_PROFILES, resolve_charlm_config
from seqflow.core.errors import ConfigError
from seqflow.core.promotion import decide_by_metric
from seqflow.core.settings import TrackingSettings, load_settings


def test_profiles_resolve_and_overrides_are_typed():
    for name in CHARLM_PROFILES:
        assert resolve_charlm_config(name).profile == name
    config = resolve_charlm_config(
        "quick", {"seed": "3"},
        {"training.architectures": "char_gru,char_lstm", "training.stateful": "true", "sampling.temperatures": "0,1.2",
         "data.max_chars": "None", "seed": "9"},
    )
    assert config.seed == 9 and config.training.architectures == ("char_gru", "char_lstm")
    assert config.training.stateful is True and config.sampling.temperatures == (0.0, 1.2)
    assert config.data.max_chars is None
    assert config.to_flat_dict()["training.rnn_units"] == 256


def test_an_unknown_profile_is_refused():
    # Bad overrides of either pipeline: tests/core/test_config_limits.py.
    with pytest.raises(ConfigError, match="unknown charlm profile 'nope'"):
        resolve_charlm_config("nope")


def test_charlm_names_default_to_the_sentiment_names_plus_suffix(tmp_path):
    settings = TrackingSettings(experiment_name="exp", registered_model_name="model").for_charlm()
    assert (settings.experiment_name, settings.registered_model_name) == ("exp-charlm", "model-charlm")
    assert settings.for_charlm() == settings
    env_file = tmp_path / "x.env"
    env_file.write_text("SEQFLOW_CHARLM_MODEL_NAME=lyrics-lm\n")
    loaded = load_settings(env_file, environ={}).for_charlm()
    assert loaded.registered_model_name == "lyrics-lm" and loaded.experiment_name == "seqflow-imdb-charlm"


def test_lower_is_better_gate():
    def decide(challenger, champion):
        return decide_by_metric("2", challenger, "1" if champion else None, champion, metric="validation perplexity",
                                higher_is_better=False, bound=6.0, min_improvement=0.1, data="validation text")

    assert decide(5.0, None).promote and "first champion: validation perplexity 5.0000" in decide(5.0, None).reason
    assert not decide(6.5, None).promote and "above the ceiling 6.0000" in decide(6.5, None).reason
    assert decide(4.0, 4.5).promote
    assert not decide(4.45, 4.5).promote and "does not beat champion v1" in decide(4.45, 4.5).reason
    assert not decide(float("nan"), None).promote


def test_training_budget_stops_before_an_epoch_that_would_overrun():
    from seqflow.charlm.train import TrainingBudget

    now = [0.0]
    budget = TrainingBudget(1.0, clock=lambda: now[0])  # 60 s
    budget.start()
    now[0] = 20.0  # epoch 1 took 20 s: 20 + 20 <= 60
    assert not budget.another_epoch_would_overrun(1)
    now[0] = 45.0  # epoch 2 took 25 s (the longest): 45 + 25 > 60
    assert budget.another_epoch_would_overrun(2)
    unlimited = TrainingBudget(None, clock=lambda: now[0])
    unlimited.start()
    now[0] = 1e9
    assert not unlimited.another_epoch_would_overrun(1)


def test_training_budget_must_be_positive():
    with pytest.raises(ConfigError, match="max_training_minutes must be positive"):
        resolve_charlm_config("quick", None, {"training.max_training_minutes": "0"})
    assert resolve_charlm_config("quick", None, {"training.max_training_minutes": "2.5"}).training.max_training_minutes == 2.5
