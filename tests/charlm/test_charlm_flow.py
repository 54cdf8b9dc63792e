"""`seqflow charlm run` end to end on the session's Prefect server and a temporary MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from seqflow.core.tracking import CHAMPION_ALIAS, FLOW_RUN_TAG, ROLE_TAG
from seqflow.charlm.generate import CHAR_GENERATION
from tests.charlm.conftest import CHINESE_LINES, charlm_settings_in, tiny_charlm_config_in
from tests.flows.conftest import crashing_on, one_execution

pytestmark = pytest.mark.slow


def _runs(client: MlflowClient, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    return client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("charlm_flow")


@pytest.fixture(scope="module")
def shared_settings(shared_folder):
    return charlm_settings_in(shared_folder)


@pytest.fixture(scope="module")
def first_execution(prefect_api, shared_folder, shared_settings):
    """One execution shared by the tests of this module (training is the slow part)."""
    from seqflow.flows.charlm import charlm_flow

    config = tiny_charlm_config_in(shared_folder)
    return config, charlm_flow(config, shared_settings)


def test_charlm_run_tracks_registers_and_promotes(first_execution, shared_settings):
    config, summary = first_execution
    settings = shared_settings
    assert settings.experiment_name == "seqflow-test-charlm"
    assert settings.registered_model_name == "seqflow-test-sentiment-charlm"
    client = MlflowClient(settings.tracking_uri)
    parent, children = one_execution(client, settings.experiment_name, "charlm-pipeline", "charlm-architecture")
    parent_id = parent.info.run_id
    for child in children:
        for key in ("loss", "perplexity", "val_loss", "val_perplexity"):
            history = client.get_metric_history(child.info.run_id, key)
            assert [point.step for point in history] == [1, 2]
        val_losses = [p.value for p in client.get_metric_history(child.info.run_id, "val_loss")]
        # The count baselines beside the network's score, on the same validation characters.
        metrics = child.data.metrics
        assert 1 < metrics["baseline_ngram_val_perplexity"] < metrics["baseline_unigram_val_perplexity"]
        assert metrics["baseline_ngram_order"] >= 2
        # The registered model is the best epoch's: its re-measured loss is the best logged one.
        assert child.data.metrics["best_val_loss"] == pytest.approx(min(val_losses), rel=1e-4)
        artifacts = {item.path for item in client.list_artifacts(child.info.run_id)}
        assert {"plots", "history.json", "samples"} <= artifacts
        assert client.get_run(child.info.run_id).outputs.model_outputs  # the model: an MLflow 3 logged model of the run
        samples = [item.path for item in client.list_artifacts(child.info.run_id, "samples")]
        assert samples == ["samples/epoch_001.txt", "samples/epoch_002.txt"]
        text = client.download_artifacts(child.info.run_id, "samples/epoch_002.txt")
        content = open(text, encoding="utf-8").read()
        assert content.count("--- seed 0, temperature") == len(config.sampling.temperatures)
        assert "ROMEO:" in content
    assert {"comparison.txt", "comparison.csv", "contracts"} <= {i.path for i in client.list_artifacts(parent_id)}

    versions = client.search_model_versions(f"name='{settings.registered_model_name}'")
    assert sorted(v.tags["architecture"] for v in versions) == ["char_gru", "char_lstm"]
    champion = client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS)
    best = min(summary.rows, key=lambda row: row.val_perplexity)
    assert champion.tags["architecture"] == best.architecture
    assert float(champion.tags["val_perplexity"]) == pytest.approx(best.val_perplexity, rel=1e-5)
    assert summary.champion_version == str(champion.version)
    assert "first champion: validation perplexity" in summary.decision_reason


def _env_file(settings, folder, charlm_model_name=None):  # noqa: ANN001, ANN202
    """An --env-file naming the sentiment names (the CLI derives the charlm experiment from them) and the charlm
    registered model explicitly (SEQFLOW_CHARLM_MODEL_NAME overrides the name derived from the corpus)."""
    env_file = folder / "test.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={settings.tracking_uri}\n"
        "MLFLOW_EXPERIMENT_NAME=seqflow-test\n"
        "SEQFLOW_REGISTERED_MODEL_NAME=seqflow-test-sentiment\n"
        f"SEQFLOW_CHARLM_MODEL_NAME={charlm_model_name or settings.registered_model_name}\n"
    )
    return env_file


def test_generate_answers_from_a_fresh_process(first_execution, shared_settings, tmp_path, capsys):
    from seqflow.cli import main

    env_file = _env_file(shared_settings, tmp_path)
    arguments = ["--env-file", str(env_file), "generate", "--prefix", "ROMEO:",
                 "--length", "120", "--temperature", "0.8", "--seed", "3", "--json"]
    first = subprocess.run([sys.executable, "-m", "seqflow.cli", *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout)
    assert result["text"] == "ROMEO:" + result["continuation"] and len(result["continuation"]) == 120
    # Same seed, same text, even in another process (this one: a second fresh process costs 15-30 s of imports).
    assert main(arguments) == 0
    assert json.loads(capsys.readouterr().out) == result


def test_generate_refuses_a_prefix_outside_the_vocabulary(first_execution, shared_settings, tmp_path, capsys):
    from seqflow.cli import main

    env_file = _env_file(shared_settings, tmp_path)
    code = main(["--env-file", str(env_file), "generate", "--prefix", "ROMEO: \u2603\u2603", "--length", "5"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured.err
    assert "seqflow: error: cannot generate for 1 of 1 row(s)" in captured.err
    assert "prefix 'ROMEO: \u2603\u2603' has 1 character(s) outside the model's vocabulary" in captured.err
    assert "Traceback" not in captured.err


def test_worse_second_execution_does_not_move_the_champion(first_execution, shared_folder, shared_settings):
    from seqflow.flows.charlm import charlm_flow

    client = MlflowClient(shared_settings.tracking_uri)
    name = shared_settings.registered_model_name
    before = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    # Same data; a learning rate this small leaves the model near uniform.
    worse = tiny_charlm_config_in(shared_folder, **{"training.architectures": "char_simple_rnn", "training.epochs": "1",
                                                    "training.learning_rate": "1e-7"})
    summary = charlm_flow(worse, shared_settings)
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == before.version
    assert "does not beat champion" in summary.decision_reason
    assert "not_promoted_reason" in client.get_model_version(name, summary.rows[0].version).tags


def test_failure_mid_run_leaves_no_version_alias_or_running_run(prefect_api, tiny_charlm_config,
                                                                charlm_tracking_settings, monkeypatch):
    from seqflow.charlm import train as char_training  # noqa: F401 - patched where char_steps imports it
    from seqflow.flows.charlm import charlm_flow

    monkeypatch.setattr(char_training, "train_char_model", crashing_on(char_training.train_char_model, "char_lstm"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        charlm_flow(tiny_charlm_config(**{"training.epochs": "1"}), charlm_tracking_settings)
    client = MlflowClient(charlm_tracking_settings.tracking_uri)
    statuses = {run.data.tags.get("architecture", "pipeline"): run.info.status
                for run in _runs(client, charlm_tracking_settings.experiment_name)}
    assert statuses == {"pipeline": "FAILED", "char_gru": "FINISHED", "char_lstm": "FAILED"}
    assert client.search_model_versions(f"name='{charlm_tracking_settings.registered_model_name}'") == []


def test_a_champion_of_another_alphabet_is_refused_not_scored(first_execution, shared_folder, shared_settings,
                                                             chinese_text_path):
    from seqflow.flows.charlm import charlm_flow

    # The English champion of the shared registry; a Chinese corpus forced into the same registered model.
    chinese = tiny_charlm_config_in(shared_folder, **{
        "data.source": f"text:{chinese_text_path}", "data.max_chars": "None", "data.block_chars": "400",
        "contracts.min_chars": "200", "training.architectures": "char_gru", "training.epochs": "1",
        "sampling.prefix": "",
    })
    summary = charlm_flow(chinese, shared_settings)
    assert summary.decision_reason.startswith("not compared with champion v")
    assert "outside the champion's vocabulary" in summary.decision_reason and "--model-name" in summary.decision_reason
    client = MlflowClient(shared_settings.tracking_uri)
    champion = client.get_model_version_by_alias(shared_settings.registered_model_name, CHAMPION_ALIAS)
    assert champion.tags["architecture"] != "char_gru" or champion.version != summary.rows[0].version


def test_chinese_text_trains_and_generates(prefect_api, tiny_charlm_config, charlm_tracking_settings, chinese_text_path,
                                           tmp_path, capsys):
    from seqflow.flows.charlm import charlm_flow
    from seqflow.core.tracking import Tracker

    config = tiny_charlm_config(**{
        "data.source": f"text:{chinese_text_path}", "data.max_chars": "None", "data.block_chars": "400",
        "contracts.min_chars": "200", "training.architectures": "char_lstm", "training.epochs": "1",
        "sampling.prefix": "",
    })
    summary = charlm_flow(config, charlm_tracking_settings)
    assert summary.champion_version == "1"
    model = Tracker(charlm_tracking_settings).load_pyfunc(f"models:/{charlm_tracking_settings.registered_model_name}@champion", CHAR_GENERATION)
    import pandas as pd

    result = model.predict(pd.DataFrame({"prefix": ["床前"], "length": [30], "temperature": [0.7], "seed": [1]}))
    continuation = result["continuation"][0]
    assert len(continuation) == 30
    poem_chars = set("".join(CHINESE_LINES) + "\n")
    assert set(continuation) <= poem_chars
    # `seqflow generate --model-name`: a Chinese prefix in, Chinese text out (the name wins over the env's).
    from seqflow.cli import main

    env_file = _env_file(charlm_tracking_settings, tmp_path, charlm_model_name="seqflow-charlm-some-other-corpus")
    code = main(["--env-file", str(env_file), "generate", "--model-name", charlm_tracking_settings.registered_model_name,
                 "--prefix", "床前", "--length", "20", "--seed", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    generated = json.loads(captured.out)["continuation"]
    assert len(generated) == 20 and set(generated) <= poem_chars
    assert sum("\u4e00" <= char <= "\u9fff" for char in generated) >= 10


def _statuses(summary) -> dict[str, tuple[str, str]]:
    return {status.task: (status.status, status.reason) for status in summary.tasks}


def test_repeat_reuses_every_task_changed_epochs_retrain_and_rerun_runs_one_task(
    first_execution, shared_folder, shared_settings, tmp_path, capsys
):
    """The sentiment flow's caching and reruns, on the module's execution: a repeat is fully cached under a new
    parent run, a changed training.epochs retrains (and says why), and `seqflow charlm rerun evaluate` scores
    one architecture again without redoing the rest."""
    from seqflow.cli import main
    from seqflow.flows.charlm import charlm_flow

    config, first = first_execution
    client = MlflowClient(shared_settings.tracking_uri)
    name = shared_settings.registered_model_name
    first_flow_run = client.get_run(first.parent_run_id).data.tags[FLOW_RUN_TAG]
    runs_before = {run.info.run_id for run in _runs(client, shared_settings.experiment_name)}
    versions_before = len(client.search_model_versions(f"name='{name}'"))

    second = charlm_flow(config, shared_settings)
    statuses = _statuses(second)
    assert list(statuses) == [
        "load-text", "contracts-char-text", "encode-chars", "train-char_gru", "train-char_lstm",
        "evaluate-char_gru", "evaluate-char_lstm", "register-charlm",
    ]
    for task, (status, reason) in statuses.items():
        assert (status, reason) == ("cached", f"same inputs, config and code as flow run {first_flow_run}"), task
    new_runs = [run for run in _runs(client, shared_settings.experiment_name) if run.info.run_id not in runs_before]
    # Only a new parent run: the child runs and registered versions are the first execution's.
    assert [run.data.tags[ROLE_TAG] for run in new_runs] == ["charlm-pipeline"]
    parent = new_runs[0]
    assert parent.info.run_id == second.parent_run_id and parent.info.status == "FINISHED"
    assert len(client.search_model_versions(f"name='{name}'")) == versions_before
    assert [(row.architecture, row.val_perplexity, row.version) for row in second.rows] == [
        (row.architecture, row.val_perplexity, row.version) for row in first.rows
    ]
    assert parent.data.tags["seqflow.cached_tasks"] == ",".join(statuses)
    for row in first.rows:
        child_run = client.get_model_version(name, row.version).run_id
        assert f"train-{row.architecture}={child_run}" in parent.data.tags["seqflow.reused_runs"]
    with open(client.download_artifacts(second.parent_run_id, "tasks.json")) as handle:
        assert [entry["status"] for entry in json.load(handle)] == ["cached"] * len(statuses)
    assert "tasks:" in second.render() and "train-char_gru" in second.render()

    # Another training.epochs for one architecture: data tasks cached; its training and what follows ran, saying why.
    changed = charlm_flow(tiny_charlm_config_in(shared_folder, **{"training.architectures": "char_gru",
                                                                  "training.epochs": "1"}), shared_settings)
    statuses = _statuses(changed)
    assert {task: statuses[task][0] for task in ("load-text", "contracts-char-text", "encode-chars")} == {
        "load-text": "cached", "contracts-char-text": "cached", "encode-chars": "cached"
    }
    assert statuses["train-char_gru"] == ("ran", "training.epochs changed (2 -> 1)")
    assert statuses["evaluate-char_gru"] == ("ran", "input changed (trained run)")
    assert statuses["register-charlm"][0] == "ran"
    assert changed.rows[0].epochs == 1

    # Rerun one task of that execution from a fresh CLI call: a new parent and child run tagged rerun_of.
    env_file = tmp_path / "test.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={shared_settings.tracking_uri}\nMLFLOW_EXPERIMENT_NAME=seqflow-test\n"
        "SEQFLOW_REGISTERED_MODEL_NAME=seqflow-test-sentiment\n"
    )
    runs_before = {run.info.run_id for run in _runs(client, shared_settings.experiment_name)}
    versions_before = len(client.search_model_versions(f"name='{name}'"))
    capsys.readouterr()
    exit_code = main(["--env-file", str(env_file), "charlm", "rerun", "evaluate", "--arch", "char_gru",
                      "--from-run", changed.parent_run_id, "--json"])
    output = capsys.readouterr().out
    assert exit_code == 0, output
    new_runs = [run for run in _runs(client, shared_settings.experiment_name) if run.info.run_id not in runs_before]
    parents = [run for run in new_runs if run.data.tags[ROLE_TAG] == "charlm-pipeline"]
    children = [run for run in new_runs if run.data.tags[ROLE_TAG] == "charlm-architecture"]
    assert len(parents) == 1 and len(children) == 1 and len(new_runs) == 2
    parent, child = parents[0], children[0]
    # --json: the rerun's summary, alone on standard output.
    assert json.loads(output)["parent_run_id"] == parent.info.run_id
    assert parent.data.tags["rerun_of"] == child.data.tags["rerun_of"] == changed.parent_run_id
    assert parent.data.tags["seqflow.rerun_task"] == "evaluate"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.data.tags["architecture"] == "char_gru"
    assert {parent.info.status, child.info.status} == {"FINISHED"}
    # The earlier execution's trained model and ids were scored again, not retrained: the same loss.
    trained_run = client.get_model_version(name, changed.rows[0].version).run_id
    assert child.data.tags["evaluated_model_run"] == trained_run
    assert parent.data.tags["ids_digest"] == client.get_run(changed.parent_run_id).data.tags["ids_digest"]
    assert child.data.metrics["best_val_loss"] == pytest.approx(changed.rows[0].val_loss, rel=1e-5)
    with open(client.download_artifacts(parent.info.run_id, "tasks.json")) as handle:
        assert json.load(handle) == [{"task": "evaluate-char_gru", "status": "ran", "reason": "forced (rerun)", "run_id": None}]
    with open(client.download_artifacts(parent.info.run_id, "pipeline_state.json")) as handle:
        assert [model["run_id"] for model in json.load(handle)["evaluated"]] == [child.info.run_id]
    # Registration is downstream: not rerun.
    assert len(client.search_model_versions(f"name='{name}'")) == versions_before
    assert json.loads(output)["rerun_of"] == changed.parent_run_id

    # A sentiment command given a charlm execution says which command reruns it.
    assert main(["--env-file", str(env_file), "rerun", "train", "--from-run", changed.parent_run_id]) == 2
    assert "rerun its tasks with `seqflow charlm rerun`" in capsys.readouterr().err
