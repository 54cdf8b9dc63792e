"""The search machinery of ``seqflow tune`` without training: typed spaces and their one-line errors, profile
files, a trial's life in the study and in MLflow (completed, pruned, failed), stale trials of a dead search,
and that a trial's fit is given no test split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from seqflow.core.errors import ConfigError
from seqflow.core.search_space import check_space_values, distributions, load_space, parse_space
from seqflow.core.studies import OWNER_ATTR, RUN_ATTR, default_storage, fail_trials_of_dead_processes, open_study
from seqflow.core.tuning import TRIAL_STATE_TAG, TrialTicket, run_trial
from seqflow.sentiment.profiles import get_profile
from seqflow.sentiment.tuning import DEFAULT_SPACES, SEARCH_SECTIONS, trial_config


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"training.learning_rate": {"type": "float", "low": 0.1, "high": 0.01}}, "'training.learning_rate': low (0.1) must be below high (0.01)"),
        ({"training.learning_rate": {"type": "float", "low": 0, "high": 0.01, "log": True}}, "a log range needs low > 0"),
        ({"training.rnn_units": {"type": "integer", "low": 1, "high": 4}}, "type must be float, int or categorical"),
        ({"training.rnn_units": {"type": "categorical", "choices": []}}, "choices: List should have at least 1 item"),
        ({"training.rnn_units": {"type": "int", "low": 1, "high": 4, "stride": 2}}, "stride: Extra inputs are not permitted"),
        ([], "a search space is a non-empty mapping"),
    ],
)
def test_a_badly_shaped_space_is_one_line_naming_the_parameter(space, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        parse_space(space, "search space 'x.yaml'")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"data.limit": {"type": "int", "low": 100, "high": 200}}, "only training.*, tokenisation.* settings can be searched"),
        ({"training.dropout": {"type": "float", "low": 0.5, "high": 1.5}}, "'training.dropout' can take 1.5, which the config refuses"),
        ({"training.nonsense": {"type": "categorical", "choices": [1]}}, "'training.nonsense' can take 1"),
    ],
)
def test_a_space_the_config_refuses_is_caught_before_any_trial(space, message):
    base = get_profile("quick")
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_space_values(parse_space(space, "s"), SEARCH_SECTIONS, lambda o: trial_config(base, "lstm", o), "s")


@pytest.mark.parametrize("architecture", sorted(DEFAULT_SPACES))
def test_every_default_space_fits_the_default_profiles(architecture):
    for profile in ("quick", "best"):
        base = get_profile(profile)
        check_space_values(DEFAULT_SPACES[architecture], SEARCH_SECTIONS, lambda o: trial_config(base, architecture, o), "d")


def test_space_files_in_yaml_json_and_toml_read_alike(tmp_path: Path):
    (tmp_path / "s.yaml").write_text("training.learning_rate: {type: float, low: 0.001, high: 0.01, log: true}\n")
    (tmp_path / "s.json").write_text(json.dumps({"training.learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True}}))
    (tmp_path / "s.toml").write_text('["training.learning_rate"]\ntype = "float"\nlow = 0.001\nhigh = 0.01\nlog = true\n')
    spaces = [load_space(tmp_path / name) for name in ("s.yaml", "s.json", "s.toml")]
    assert spaces[0] == spaces[1] == spaces[2]
    (tmp_path / "bad.yaml").write_text("training.learning_rate: {type: float, low: [\n")
    with pytest.raises(ConfigError, match=r"search space .*bad.yaml' is not valid YAML"):
        load_space(tmp_path / "bad.yaml")


def test_trial_parameters_override_the_base_profiles_own_per_architecture_settings():
    # `best` sets embedding_pool's learning rate per architecture; the trial's value must win.
    config = trial_config(get_profile("best"), "embedding_pool", {"training.learning_rate": 0.0123, "tokenisation.max_length": 150})
    assert config.training.architectures == ("embedding_pool",)
    assert config.training.for_architecture("embedding_pool").learning_rate == 0.0123
    assert config.tokenisation.max_length == 150 and config.training.checkpoint is False


def test_a_profile_file_is_accepted_where_a_profile_name_is(tmp_path: Path):
    path = tmp_path / "tuned.yaml"
    path.write_text("base: quick\nsettings:\n  training.architectures: [lstm]\n  training.per_architecture.lstm.rnn_units: 32\n")
    config = get_profile(str(path))
    assert config.profile == "tuned" and config.training.architectures == ("lstm",)
    assert config.training.for_architecture("lstm").rnn_units == 32
    path.write_text("base: nope\n")
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        get_profile(str(path))
    path.write_text("base: quick\nsettings: {training.epochs: 0}\n")
    with pytest.raises(ConfigError, match=r"profile file .*tuned.yaml'.*training.epochs"):
        get_profile(str(path))


def test_the_study_goes_beside_a_sqlite_store_and_other_stores_need_storage():
    assert default_storage("sqlite:////srv/ml/mlflow.db") == "sqlite:////srv/ml/optuna.db"
    with pytest.raises(ConfigError, match="pass --storage"):
        default_storage("http://mlflow.internal:5000")


def _study(tmp_path: Path, pruner=None, identity=None):  # noqa: ANN001, ANN202
    return open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "s", pruner or optuna.pruners.NopPruner(), 0, identity or {"a": 1})


def _ticket(tmp_path: Path, trial) -> TrialTicket:  # noqa: ANN001 - an Optuna trial; the median pruner, 1 startup trial
    return TrialTicket(f"sqlite:///{tmp_path / 'optuna.db'}", "s", trial._trial_id, trial.number, dict(trial.params), "median", 1)


def _scripted(losses: list[float]):  # noqa: ANN202 - a trial's train function that reports these losses
    def train(run_id: str, on_epoch_end):  # noqa: ANN001, ANN202
        for epoch, loss in enumerate(losses, start=1):
            on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
        return {"val_loss": losses}

    return train


def test_trials_end_completed_pruned_or_failed_in_the_study_and_in_mlflow(tmp_path: Path, tracker):
    study = _study(tmp_path)
    space = distributions(parse_space({"training.dropout": {"type": "float", "low": 0.0, "high": 0.5}}, "s"))
    parent = tracker.start_run("search", tags={})

    good = study.ask(space)
    result = run_trial(tracker, _ticket(tmp_path, good), parent, None, {}, _scripted([0.6, 0.4, 0.5]))
    assert (result.state, result.value) == ("COMPLETE", 0.4)

    bad = study.ask(space)
    result = run_trial(tracker, _ticket(tmp_path, bad), parent, None, {}, _scripted([0.9, 0.8, 0.7]))
    assert result.state == "PRUNED" and result.epochs == 1  # worse than the median of trial 0 at epoch 1

    broken = study.ask(space)
    with pytest.raises(ValueError, match="no finite val_loss"):
        run_trial(tracker, _ticket(tmp_path, broken), parent, None, {}, _scripted([float("nan")]))

    states = [trial.state for trial in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    runs = [tracker.client.get_run(trial.user_attrs[RUN_ATTR]) for trial in study.get_trials()]
    assert [(run.info.status, run.data.tags[TRIAL_STATE_TAG]) for run in runs] == [
        ("FINISHED", "COMPLETE"), ("FINISHED", "PRUNED"), ("FAILED", "FAIL")]
    assert all(run.data.tags["mlflow.parentRunId"] == parent for run in runs)
    assert [m.value for m in tracker.client.get_metric_history(runs[0].info.run_id, "val_loss")] == [0.6, 0.4, 0.5]


def test_a_study_resumed_with_other_settings_is_refused(tmp_path: Path):
    _study(tmp_path, identity={"space": "a"})
    with pytest.raises(ConfigError, match=r"study 's' was started with other settings \(space differ\)"):
        _study(tmp_path, identity={"space": "b"})


def test_running_trials_of_a_dead_search_are_failed_and_live_ones_kept(tmp_path: Path, dead_process):
    from seqflow.core.processes import current_process

    study = _study(tmp_path)
    dead, live = study.ask(), study.ask()
    for trial, owner in ((dead, dead_process), (live, current_process())):
        trial.set_user_attr(OWNER_ATTR, {"host": owner.host, "pid": owner.pid, "started": owner.started})
    assert fail_trials_of_dead_processes(study) == [dead.number]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING]


def test_a_trials_fit_is_given_the_training_and_validation_splits_only(monkeypatch, tmp_path: Path):
    import seqflow.sentiment.tokenise as tokenise
    import seqflow.sentiment.train as train
    from seqflow.sentiment.tuning import fit_trial

    arrays = {f"{kind}_{split}": np.zeros((2, 3)) for kind in "xy" for split in ("train", "validation", "test")}
    given = {}
    monkeypatch.setattr(tokenise, "load_arrays", lambda tokenised: dict(arrays))
    monkeypatch.setattr(tokenise, "load_vocabulary", lambda path: ["", "[UNK]"])
    monkeypatch.setattr(train, "train_classifier", lambda architecture, arrays, *a, **k: given.update(arrays))

    class Tokenised:
        vocab_size, vocabulary_path = 2, tmp_path / "vocabulary.txt"

    fit_trial(get_profile("quick"), "lstm", Tokenised(), lambda epoch, logs: None, tmp_path)
    assert sorted(given) == ["x_train", "x_validation", "y_train", "y_validation"]


def test_an_unreachable_study_storage_is_one_line_without_its_password():
    from seqflow.core.studies import open_storage

    with pytest.raises(ConfigError, match=r"cannot open the study storage 'postgresql\+psycopg2://\*\*\*@127.0.0.1:1/x'") as caught:
        open_storage("postgresql+psycopg2://user:secret@127.0.0.1:1/x")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_failure_between_starting_the_trials_run_and_its_fit_ends_the_run_failed(tmp_path: Path, tracker, monkeypatch):
    # Logging the trial's parameters happens after its run starts: a refusal there must not leave the run RUNNING.
    study = _study(tmp_path)
    trial = study.ask(distributions(parse_space({"training.dropout": {"type": "float", "low": 0.0, "high": 0.5}}, "s")))
    parent = tracker.start_run("search", tags={})

    def refuse(run_id, params):  # noqa: ANN001, ANN202
        raise RuntimeError("the store refused the parameters")

    monkeypatch.setattr(tracker, "log_params", refuse)
    with pytest.raises(RuntimeError, match="refused the parameters"):
        run_trial(tracker, _ticket(tmp_path, trial), parent, None, {}, _scripted([0.5]))
    [run] = [run for run in tracker.client.search_runs([tracker.client.get_run(parent).info.experiment_id])
             if run.data.tags.get("mlflow.parentRunId") == parent]
    assert (run.info.status, run.data.tags[TRIAL_STATE_TAG]) == ("FAILED", "FAIL")
    assert study.get_trials()[0].state == TrialState.FAIL
