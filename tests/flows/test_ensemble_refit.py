"""`seqflow run` with training.refit and the ensemble step: one tiny execution shared by the module (nbsvm and
embedding_pool, one epoch, both refitted, stacked into an ensemble; nbsvm on a 150-row sample of the training
split, training.per_architecture.nbsvm.max_train_rows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from seqflow.core.errors import ConfigError, SeqflowError
from seqflow.core.tracking import ROLE_TAG
from seqflow.sentiment.config import EnsembleConfig
from seqflow.sentiment.ensemble import MEMBERS_TAG, choose_members
from seqflow.sentiment.refit import rows_digest
from seqflow.sentiment.tokenise import load_arrays
from seqflow.sentiment.train import stratified_rows
from tests.flows.conftest import write_env_file

pytestmark = pytest.mark.slow

# nbsvm's training rows in this module's execution (the tiny split has 288).
NBSVM_ROWS = 150


@pytest.fixture(scope="module")
def execution(prefect_api, shared_config, shared_settings):
    from seqflow.flows.sentiment import sentiment_flow

    config = shared_config(**{
        "training.architectures": "nbsvm,embedding_pool",
        "training.epochs": "1",
        "training.refit": "true",
        "ensemble.enabled": "true",
        "ensemble.method": "stack",
        "training.per_architecture.nbsvm.max_train_rows": str(NBSVM_ROWS),
    })
    return config, sentiment_flow(config, shared_settings)


def _children(settings):
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    return client, {run.info.run_name: run for run in runs if run.data.tags.get(ROLE_TAG) == "architecture"}


def test_refit_fits_train_and_validation_only_and_is_scored_once(execution, shared_settings):

    config, summary = execution
    client, runs = _children(shared_settings)
    assert set(runs) == {"nbsvm", "nbsvm-refit", "embedding_pool", "embedding_pool-refit", "ensemble"}
    assert {run.info.status for run in runs.values()} == {"FINISHED"}
    state = _state(summary, shared_settings)
    arrays = load_arrays(state.tokenised)
    with_test = rows_digest(
        np.concatenate([arrays["x_train"], arrays["x_validation"], arrays["x_test"]]),
        np.concatenate([arrays["y_train"], arrays["y_validation"], arrays["y_test"]]),
    )
    all_train = len(arrays["x_train"])
    for architecture, train_rows in (("nbsvm", NBSVM_ROWS), ("embedding_pool", all_train)):
        chooser, refitted = runs[architecture], runs[f"{architecture}-refit"]
        # max_train_rows: the first fit read exactly that many training rows (its param and metric say so), and
        # the refit the same sample plus the validation rows; embedding_pool, without a limit, read all of them.
        assert chooser.data.params["training.max_train_rows"] == ("None" if train_rows == all_train else str(train_rows))
        assert chooser.data.metrics["train_rows"] == train_rows
        limit = None if train_rows == all_train else train_rows
        sample = stratified_rows(arrays["y_train"], limit, config.seed)
        fitted = rows_digest(
            np.concatenate([arrays["x_train"][sample], arrays["x_validation"]]),
            np.concatenate([arrays["y_train"][sample], arrays["y_validation"]]),
        )
        # Linked both ways; the refit read exactly train + validation (digest of the id rows and labels).
        assert refitted.data.tags["seqflow.refit_of"] == chooser.info.run_id
        assert chooser.data.tags["seqflow.refitted_as"] == refitted.info.run_id
        assert refitted.data.tags["seqflow.refit_data_digest"] == fitted != with_test
        assert int(refitted.data.tags["seqflow.refit_rows"]) == train_rows + len(arrays["x_validation"])
        # The test split is scored once: on the refitted model, never on the one that chose its epochs.
        assert "test_accuracy" in refitted.data.metrics
        assert not any(key.startswith("test_") for key in chooser.data.metrics)
    registered = {v.run_id for v in client.search_model_versions(f"name='{shared_settings.registered_model_name}'")}
    assert registered == {runs[name].info.run_id for name in ("nbsvm-refit", "embedding_pool-refit", "ensemble")}


def _state(summary, settings):
    from seqflow.core.tracking import Tracker
    from seqflow.sentiment.pipeline import SENTIMENT
    from seqflow.sentiment.state import state_from_json

    text = Tracker(settings).read_text(summary.parent_run_id, "pipeline_state.json")
    assert text, f"no pipeline_state.json on {SENTIMENT.name}'s parent run"
    return state_from_json(text)


def test_ensemble_names_its_members_and_serves_raw_text_in_a_fresh_process(execution, shared_settings, tmp_path):
    config, summary = execution
    client, runs = _children(shared_settings)
    ensemble = runs["ensemble"]
    members = dict(pair.split("=") for pair in ensemble.data.tags[MEMBERS_TAG].split(","))
    assert members == {"nbsvm": runs["nbsvm-refit"].info.run_id, "embedding_pool": runs["embedding_pool-refit"].info.run_id}
    assert "test_accuracy" in ensemble.data.metrics and "ensemble" in [row.architecture for row in summary.rows]
    version = next(
        v for v in client.search_model_versions(f"name='{shared_settings.registered_model_name}'")
        if v.run_id == ensemble.info.run_id
    )
    env_file = write_env_file(shared_settings, tmp_path / "test.env")
    reviews = ["A wonderful film, the best acting I have seen all year.", "Awful. Boring and far too long."]
    uri = f"models:/{shared_settings.registered_model_name}/{version.version}"
    result = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "predict", "--json", "--model-uri", uri, *reviews],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads(result.stdout)
    assert [p["text"] for p in predictions] == reviews
    assert all(0.0 <= p["probability"] <= 1.0 and p["label"] == int(p["probability"] >= 0.5) for p in predictions)


def test_missing_member_is_refused_in_one_line(execution, shared_settings, shared_config, tmp_path):
    config, summary = execution
    trained = [model for model in _state(summary, shared_settings).trained if model.architecture != "ensemble"]
    # A member the run does not train: refused when the config is built, naming it and the fix.
    with pytest.raises(ConfigError, match=r"ensemble.members names \['lstm'\], which this run does not train"):
        shared_config(**{"training.architectures": "nbsvm,embedding_pool", "ensemble.enabled": "true", "ensemble.members": "nbsvm,lstm"})
    with pytest.raises(SeqflowError, match=r"member\(s\) \['lstm'\] were not trained") as refused:
        choose_members(trained, EnsembleConfig(enabled=True, members=("nbsvm", "lstm")))
    assert "\n" not in str(refused.value)
    # A member whose model file is gone (a cleaned artifacts folder): refused before any run starts.
    gone = Path(trained[0].classifier_path)
    moved = gone.with_suffix(".moved")
    gone.rename(moved)
    try:
        with pytest.raises(SeqflowError, match=rf"member {trained[0].architecture}'s model .* is missing") as refused:
            choose_members(trained, EnsembleConfig(enabled=True))
        assert "\n" not in str(refused.value)
    finally:
        moved.rename(gone)
