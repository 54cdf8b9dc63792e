"""The whole `seqflow run` chain against a temporary MLflow store and the session's Prefect server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from seqflow.core.tracking import CHAMPION_ALIAS, Tracker
from tests.flows.conftest import copy_of_store, crashing_on, one_execution, write_env_file

pytestmark = pytest.mark.slow


def _runs(client: MlflowClient, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    return client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def first_execution(prefect_api, shared_config, shared_settings):
    """One execution shared by the tests of this module (training is the slow part); tests that add to the
    store do so in a copy of it (:func:`store_copy`), so every test sees exactly this execution."""
    from seqflow.flows.sentiment import sentiment_flow

    config = shared_config(**{"training.epochs": "3"})
    summary = sentiment_flow(config, shared_settings)
    return config, summary


@pytest.fixture
def store_copy(first_execution, shared_settings, tmp_path):
    """Tracking settings for a copy of the module's store made after the first execution."""
    return copy_of_store(shared_settings, tmp_path)


def test_run_tracks_registers_and_promotes(first_execution, shared_settings, tmp_path):
    config, summary = first_execution
    tracking_settings = shared_settings
    client = MlflowClient(tracking_settings.tracking_uri)
    parent, children = one_execution(client, tracking_settings.experiment_name, "pipeline", "architecture")
    parent_id = parent.info.run_id
    assert summary.parent_run_id == parent_id
    for child in children:
        epochs_run = int(child.data.metrics["epochs_run"])
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(child.info.run_id, key)
            # One point per epoch, logged with step=epoch (1-based) as training went.
            assert [point.step for point in history] == list(range(1, epochs_run + 1))
        for key in ("test_accuracy", "test_roc_auc", "test_f1", "gap_at_best", "gap_at_end", "loss_gap_at_end"):
            assert key in child.data.metrics
        # Overfitting figures agree with the logged curve: best epoch = lowest val_loss, the rest trained after it.
        val_loss = [point.value for point in sorted(client.get_metric_history(child.info.run_id, "val_loss"), key=lambda p: p.step)]
        best_epoch = int(child.data.metrics["best_epoch"])
        assert val_loss[best_epoch - 1] == min(val_loss)
        assert child.data.metrics["epochs_past_best"] == epochs_run - best_epoch
        for check in ("invariance", "direction", "minimum_functionality"):
            assert 0.0 <= child.data.metrics[f"behaviour_{check}_pass_rate"] <= 1.0
        artifacts = {item.path for item in client.list_artifacts(child.info.run_id)}
        assert {"plots", "contracts", "history.json", "behaviour.json"} <= artifacts
        # The model itself is the run's MLflow 3 logged model (the experiment's Models tab).
        model_id = Tracker(tracking_settings).logged_model_id(child.info.run_id)
        assert "MLmodel" in {item.path for item in client.list_logged_model_artifacts(model_id)}
    parent_artifacts = {item.path for item in client.list_artifacts(parent_id)}
    assert {"comparison.txt", "comparison.csv", "contracts", "plots"} <= parent_artifacts
    parent_plots = {item.path for item in client.list_artifacts(parent_id, "plots")}
    assert parent_plots == {"plots/overlay_learning_curves.png", "plots/overlay_learning_curves.html"}
    overlay_page = Path(client.download_artifacts(parent_id, "plots/overlay_learning_curves.html", str(tmp_path)))
    page = overlay_page.read_text()
    # Self-contained (plotly.js inlined, nothing fetched) and one curve per architecture, split and metric.
    assert "<script src=" not in page
    for architecture in config.training.architectures:
        assert f"{architecture} validation" in page and f"{architecture} train" in page
    comparison_path = Path(client.download_artifacts(parent_id, "comparison.csv", str(tmp_path)))
    comparison = {row["architecture"]: row for row in csv.DictReader(io.StringIO(comparison_path.read_text()))}
    for child in children:
        row = comparison[child.data.tags["architecture"]]
        assert int(row["best_epoch"]) == int(child.data.metrics["best_epoch"])
        assert int(row["epochs_past_best"]) == int(child.data.metrics["epochs_past_best"])
        assert float(row["behaviour_direction_pass_rate"]) == pytest.approx(child.data.metrics["behaviour_direction_pass_rate"])

    versions = client.search_model_versions(f"name='{tracking_settings.registered_model_name}'")
    assert sorted(v.tags["architecture"] for v in versions) == ["embedding_pool", "lstm"]
    champion = client.get_model_version_by_alias(tracking_settings.registered_model_name, CHAMPION_ALIAS)
    best = max(summary.rows, key=lambda row: row.test_accuracy)
    assert champion.tags["architecture"] == best.architecture
    assert summary.champion_version == str(champion.version)
    assert "promoted_at" in champion.tags and "promotion_reason" in champion.tags
    assert [row.architecture for row in summary.rows] == list(config.training.architectures)
    assert "champion" in summary.render()


def test_predict_answers_from_a_fresh_process(first_execution, shared_settings, tmp_path, capsys):
    from seqflow.cli import main

    env_file = write_env_file(shared_settings, tmp_path / "test.env")
    reviews = ["A wonderful film, the best acting I have seen all year.", "Awful. Boring and far too long."]
    result = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "predict", "--json", *reviews],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads(result.stdout)
    assert [p["text"] for p in predictions] == reviews
    assert all(0.0 <= p["probability"] <= 1.0 and p["label"] == int(p["probability"] >= 0.5) for p in predictions)

    # The plain-text form needs no second fresh process (15-30 s of imports): the one above proved that.
    assert main(["--env-file", str(env_file), "predict", reviews[0]]) == 0
    plain = capsys.readouterr().out
    assert plain.strip().split()[1] in ("positive", "negative")
    assert "A wonderful film" in plain


def test_worse_second_execution_does_not_move_the_champion(first_execution, shared_config, store_copy):
    from seqflow.flows.sentiment import sentiment_flow

    tracking_settings = store_copy
    client = MlflowClient(tracking_settings.tracking_uri)
    name = tracking_settings.registered_model_name
    champion_before = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    # Same data, so the same test split; a learning rate this small leaves the model at chance.
    worse = shared_config(**{"training.architectures": "embedding_pool", "training.epochs": "1", "training.learning_rate": "1e-7"})
    summary = sentiment_flow(worse, tracking_settings)
    champion_after = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert champion_after.version == champion_before.version
    assert "does not beat champion" in summary.decision_reason
    new_version = summary.rows[0].version
    assert "not_promoted_reason" in client.get_model_version(name, new_version).tags
    assert not summary.rows[0].champion


def test_failure_mid_run_leaves_no_version_alias_or_running_run(prefect_api, tiny_config, tracking_settings, monkeypatch):
    from seqflow.tasks import sentiment as steps  # the train step's module
    from seqflow.flows.sentiment import sentiment_flow

    monkeypatch.setattr(steps, "train_classifier", crashing_on(steps.train_classifier, "lstm"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        sentiment_flow(tiny_config(), tracking_settings)

    client = MlflowClient(tracking_settings.tracking_uri)
    runs = _runs(client, tracking_settings.experiment_name)
    statuses = {run.data.tags.get("architecture", "pipeline"): run.info.status for run in runs}
    assert statuses == {"pipeline": "FAILED", "embedding_pool": "FINISHED", "lstm": "FAILED"}
    assert client.search_model_versions(f"name='{tracking_settings.registered_model_name}'") == []


def test_champion_measured_on_other_data_is_rescored_on_this_test_split(first_execution, shared_settings, shared_folder):
    """Comparing on the same test data: a champion whose digest differs is scored again, not taken from tags."""
    import dataclasses

    from seqflow.sentiment.datasets import SplitFiles
    from seqflow.sentiment.steps import _champion_accuracy_on
    from seqflow.core.tracking import Tracker

    tracker = Tracker(shared_settings)
    champion = tracker.champion()
    test_path = next((shared_folder / "artifacts" / "datasets").glob("*/test.parquet"))
    same_data = SplitFiles(
        source="csv", dataset_dir=test_path.parent, train_path=test_path.parent / "train.parquet",
        validation_path=test_path.parent / "validation.parquet", test_path=test_path,
        digests={"train": "", "validation": "", "test": ""}, rows={}, test_from_source=False,
    )
    # Same content, recorded under another digest: the score must come from the model, and match the tag.
    other_digest = dataclasses.replace(same_data, digests={"train": "x", "validation": "y", "test": "z"})
    rescored = _champion_accuracy_on(tracker, champion, other_digest)
    assert rescored == pytest.approx(float(champion.tags["test_accuracy"]), abs=1e-6)
