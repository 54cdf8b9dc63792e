"""`seqflow charlm champion | promote | rollback | serve`: the character models' champion inspected, promoted,
rolled back and served through the same code and audit trail as the sentiment one (tests/flows/test_champion.py).

One execution (module fixture) trains two tiny character models through the pipeline's steps, without Prefect;
every test works on its own copy of that store's database (the artifacts are shared and only read).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from seqflow.cli import main
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import CHAMPION_ALIAS, Tracker
from tests.charlm.conftest import charlm_settings_in, tiny_charlm_config_in
from tests.flows.serving import post, serving

pytestmark = pytest.mark.slow

# The tiny models are far above the quick profile's ceiling (10): the gates are tested against a looser one.
NO_CEILING = ("--set", "promotion.max_val_perplexity=1000")


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory) -> TrackingSettings:
    """A charlm store with one finished execution: two registered versions, the better one champion."""
    from seqflow.charlm.sources import load_char_source
    from seqflow.charlm.comparison import finish_charlm_run
    from seqflow.charlm.steps import register_and_promote_charlm, start_charlm_run
    from seqflow.tasks.charlm import evaluate, train
    from seqflow.charlm.text import encode_char_splits, write_char_splits

    folder = tmp_path_factory.mktemp("charlm-champion")
    settings = charlm_settings_in(folder)
    config = tiny_charlm_config_in(folder, **{"training.epochs": "1"})
    tracker = Tracker(settings)
    split_files = write_char_splits(load_char_source(config.data), config.data, config.seed, Path(config.artifacts_dir))
    encoded = encode_char_splits(split_files, Path(config.artifacts_dir))
    parent = start_charlm_run(tracker, config, split_files, encoded, [], None)
    # The steps' own functions (``.fn``), without a Prefect flow around them.
    evaluated = [
        evaluate.fn(settings, train.fn(settings, arch, config, split_files, encoded, parent), encoded, config)
        for arch in config.training.architectures
    ]
    finish_charlm_run(tracker, parent, evaluated, register_and_promote_charlm(tracker, evaluated, encoded, config, parent))
    return settings


@pytest.fixture
def env_file(store: TrackingSettings, tmp_path: Path) -> str:
    """An --env-file naming the sentiment names (the CLI derives the charlm experiment, settings.for_charlm) and
    the charlm registered model the fixture used (by default the CLI would derive one from the corpus)."""
    path = tmp_path / "test.env"
    path.write_text(
        f"MLFLOW_TRACKING_URI={store.tracking_uri}\nMLFLOW_EXPERIMENT_NAME=seqflow-test\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME=seqflow-test-sentiment\nSEQFLOW_CHARLM_MODEL_NAME={store.registered_model_name}\n"
    )
    return str(path)


def _seqflow(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _champion_and_other(settings: TrackingSettings):
    client = MlflowClient(settings.tracking_uri)
    name = settings.registered_model_name
    champion = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    [other] = [v for v in client.search_model_versions(f"name='{name}'") if v.version != champion.version]
    return client, champion, other


def test_charlm_champion_shows_version_metrics_and_audit(store, env_file, capsys):
    _, champion, _ = _champion_and_other(store)
    code, out, err = _seqflow(capsys, "--env-file", env_file, "charlm", "champion", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["registered_model_name"] == "seqflow-test-sentiment-charlm"
    assert shown["version"] == str(champion.version) and shown["architecture"] == champion.tags["architecture"]
    metrics = shown["validation_metrics"]
    assert metrics["best_val_perplexity"] == pytest.approx(float(champion.tags["val_perplexity"]), rel=1e-5)
    assert {"best_val_loss", "best_epoch", "parameters"} <= set(metrics)
    assert shown["audit"]["promoted_via"] == "seqflow charlm run" and shown["history_problem"] is None

    code, out, _ = _seqflow(capsys, "--env-file", env_file, "charlm", "champion")
    assert code == 0 and "seqflow-test-sentiment-charlm@champion = v" in out and "validation metrics:" in out


def test_charlm_refused_then_forced_then_rolled_back(store, env_file, capsys):
    client, champion, other = _champion_and_other(store)
    name = store.registered_model_name
    code, _, err = _seqflow(capsys, "--env-file", env_file, "charlm", "promote", other.version, *NO_CEILING)
    assert code == 4 and "promotion.min_improvement gate" in err and "validation perplexity" in err
    code, _, err = _seqflow(capsys, "--env-file", env_file, "charlm", "promote", other.version,
                            "--set", "promotion.max_val_perplexity=1.5", "--set", "promotion.min_improvement=-1000")
    assert code == 4 and "promotion.max_val_perplexity gate" in err and "above the ceiling 1.5000" in err
    code, _, err = _seqflow(capsys, "--env-file", env_file, "charlm", "promote", other.version, *NO_CEILING,
                            "--set", "promotion.min_improvement=-1000", "--set", "promotion.require_significant=true")
    assert code == 4 and "promotion.require_significant gate" in err and "paired_bootstrap p=" in err, err
    assert "validation loss (nats/char) difference +" in err and "95% CI" in err
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version

    code, out, err = _seqflow(capsys, "--env-file", env_file, "charlm", "promote", other.version, "--force",
                              "--reason", "canary", *NO_CEILING)
    assert code == 0 and "FORCED" in out, err
    promoted = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert promoted.version == other.version and promoted.tags["promoted_via"] == "seqflow charlm promote"
    assert promoted.tags["previous_champion"] == str(champion.version) and promoted.tags["promotion_forced"] == "true"
    # Recorded with the paired bootstrap over validation windows it overrode: both models scored now on the same
    # windows, whose mean-loss difference is the difference of the losses the evaluation recorded.
    tags = promoted.tags
    assert tags["promotion.test"] == "paired_bootstrap" and int(tags["promotion.paired_rows"]) > 1
    assert float(tags["promotion.difference"]) == pytest.approx(
        float(other.tags["val_loss"]) - float(champion.tags["val_loss"]), abs=1e-4
    )
    assert tags["promotion.metric"] == "validation loss (nats/char)" and "promotion.discordant" not in tags

    code, out, err = _seqflow(capsys, "--env-file", env_file, "charlm", "rollback", "--reason", "worse text", *NO_CEILING)
    assert code == 0, err
    restored = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert restored.version == champion.version and restored.tags["promoted_via"] == "seqflow charlm rollback"
    assert "is not above the ceiling 1000.0000" in restored.tags["promotion_gates"]
    assert [(move["version"], move["action"], move["promoted_via"]) for move in Tracker(store).champion_history()] == [
        (str(champion.version), "promote", "seqflow charlm run"),
        (str(other.version), "promote", "seqflow charlm promote"),
        (str(champion.version), "rollback", "seqflow charlm rollback"),
    ]
    code, _, err = _seqflow(capsys, "--env-file", env_file, "charlm", "rollback")
    assert code == 2 and "nothing to roll back to" in err
    # The sentiment registry of the same store was never touched.
    assert client.search_registered_models("name = 'seqflow-test-sentiment'") == []


def test_charlm_promote_rescores_a_champion_from_other_data_on_the_challengers_validation_text(store, env_file, capsys):
    client, champion, other = _champion_and_other(store)
    name = store.registered_model_name
    real = float(champion.tags["val_perplexity"])
    # Pretend the champion came from other data, with a perplexity any challenger would beat.
    client.set_model_version_tag(name, champion.version, "dataset_digest", "digest-of-other-text")
    client.set_model_version_tag(name, champion.version, "val_perplexity", "1e9")
    code, _, err = _seqflow(capsys, "--env-file", env_file, "charlm", "promote", other.version, *NO_CEILING)
    # Scored again on the challenger's validation text (the one both were measured on), it is the better one.
    assert code == 4 and "promotion.min_improvement gate" in err, err
    assert f"({real:.4f})" in err


def test_charlm_serve_generates_over_http(store, env_file, tmp_path):
    import pandas as pd

    row = {"prefix": "ROMEO:", "length": 30, "temperature": 0.8, "seed": 5}
    with serving(["--env-file", env_file, "charlm", "serve"], tmp_path) as (base_url, log_path):
        [served] = post(f"{base_url}/invocations", {"dataframe_records": [row]})["predictions"]
        assert served["text"] == "ROMEO:" + served["continuation"] and len(served["continuation"]) == 30
        # The server answers what the champion answers in this process, for the same seed.
        from seqflow.charlm.generate import CHAR_GENERATION

        model_uri = f"models:/{store.registered_model_name}@{CHAMPION_ALIAS}"
        expected = Tracker(store).load_pyfunc(model_uri, CHAR_GENERATION).predict(
            pd.DataFrame({key: [value] for key, value in row.items()})
        )
        assert served["text"] == expected["text"][0]
        # The example request it shows is the character model's.
        assert '"prefix": "ROMEO:"' in log_path.read_text()


def test_charlm_card_shows_perplexity_baselines_and_a_sample(store, env_file, capsys):
    """Issue 21 item 2 for the character models: `seqflow charlm card VERSION`, also the version's description;
    the model is an MLflow 3 logged model with the text splits as dataset inputs."""
    client, champion, _ = _champion_and_other(store)
    code, card, err = _seqflow(capsys, "--env-file", env_file, "charlm", "card", champion.version)
    assert code == 0, err
    assert card.startswith(f"# seqflow-test-sentiment-charlm v{champion.version}: {champion.tags['architecture']} character")
    assert "-gram count baseline |" in card and "unigram baseline |" in card and "```text\n" in card
    assert f"| this model ({champion.tags['architecture']}) |" in card and "**v" in card
    assert client.get_model_version(store.registered_model_name, champion.version).description.startswith(card[:60])
    assert champion.source.startswith("models:/m-")
    contexts = {entry.dataset.name: entry.tags[0].value for entry in client.get_run(champion.run_id).inputs.dataset_inputs}
    assert contexts == {"text-train": "training", "text-validation": "validation"}

    code, out, err = _seqflow(capsys, "--env-file", env_file, "charlm", "card", "7")
    assert code == 2 and out == "" and "has no version '7'" in err and len(err.strip().splitlines()) == 1
