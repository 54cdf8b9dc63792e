"""`seqflow champion | promote | rollback | serve` against the registry of one real tiny pipeline run.

One pipeline run (module fixture) trains two architectures; every test works on its own copy of that run's
SQLite store (the artifacts are shared and only read), so the tests do not depend on each other's order.
"""

from __future__ import annotations

import datetime
import json
import urllib.error
from pathlib import Path

import pytest
from mlflow import MlflowClient

from seqflow.cli import main
from seqflow.sentiment.config import PromotionConfig, with_overrides
from seqflow.sentiment.profiles import get_profile
from seqflow.sentiment.serving import REVIEW_SENTIMENT
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import CHAMPION_ALIAS, CHAMPION_HISTORY_TAG, Tracker, TrackingError
from tests.flows.conftest import tiny_overrides_for, tracking_settings_for, write_env_file
from tests.flows.serving import free_port, post, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_store(prefect_api, tmp_path_factory, short_reviews) -> TrackingSettings:
    """A store with one finished tiny pipeline run: two registered versions, the better one champion."""
    from seqflow.flows.sentiment import sentiment_flow

    base_dir = tmp_path_factory.mktemp("champion-store")
    reviews_csv = base_dir / "short_reviews.csv"
    short_reviews.to_csv(reviews_csv, index=False)
    settings = tracking_settings_for(base_dir)
    sentiment_flow(with_overrides(get_profile("quick"), tiny_overrides_for(base_dir, reviews_csv)), settings)
    return settings


@pytest.fixture
def env_file(store: TrackingSettings, tmp_path: Path) -> str:
    return str(write_env_file(store, tmp_path / "test.env"))


def _champion_and_other(settings: TrackingSettings):
    client = MlflowClient(settings.tracking_uri)
    name = settings.registered_model_name
    champion = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    others = [v for v in client.search_model_versions(f"name='{name}'") if v.version != champion.version]
    assert len(others) == 1
    return client, champion, client.get_model_version(name, others[0].version)


# The tiny pipeline run's own floor (tiny_overrides_for): its models are far below the quick profile's.
NO_FLOOR = ("--set", "promotion.accuracy_floor=0")


def _seqflow(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pipeline_promotion_is_audited_and_starts_the_history(store):
    client, champion, _ = _champion_and_other(store)
    tags = champion.tags
    assert tags["promoted_via"] == "seqflow run"
    assert "@" in tags["promoted_by"]
    assert datetime.datetime.fromisoformat(tags["promoted_at"]).tzinfo is not None
    assert tags["previous_champion"] == ""
    assert tags["promotion_reason"].startswith("first champion")
    history = json.loads(client.get_registered_model(store.registered_model_name).tags[CHAMPION_HISTORY_TAG])
    assert [(entry["version"], entry["action"], entry["promoted_via"]) for entry in history] == [
        (str(champion.version), "promote", "seqflow run")
    ]


def test_champion_shows_version_run_metrics_and_audit(store, env_file, capsys):
    _, champion, _ = _champion_and_other(store)
    code, out, err = _seqflow(capsys, "--env-file", env_file, "champion", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["version"] == str(champion.version) and shown["run_id"] == champion.run_id
    assert shown["architecture"] == champion.tags["architecture"]
    assert shown["test_metrics"]["test_accuracy"] == pytest.approx(float(champion.tags["test_accuracy"]), abs=1e-6)
    assert {"test_roc_auc", "test_f1", "test_loss"} <= set(shown["test_metrics"])
    assert shown["audit"]["promoted_via"] == "seqflow run" and shown["audit"]["promoted_by"] == champion.tags["promoted_by"]

    code, out, _ = _seqflow(capsys, "--env-file", env_file, "champion")
    assert code == 0
    assert f"@champion = v{champion.version}" in out and champion.run_id in out and champion.tags["architecture"] in out
    assert f"accuracy {float(champion.tags['test_accuracy']):.4f}" in out


def test_refused_promotion_then_forced_then_rolled_back(store, env_file, capsys):
    client, champion, other = _champion_and_other(store)
    name = store.registered_model_name
    champion_accuracy, other_accuracy = float(champion.tags["test_accuracy"]), float(other.tags["test_accuracy"])

    # The champion is the better of the two, so the other cannot beat it: the improvement gate refuses.
    # (The tiny models are far below the quick profile's floor, so the floor is set to 0 as for their run.)
    code, _, err = _seqflow(capsys, "--env-file", env_file, "promote", other.version, *NO_FLOOR)
    assert code == 4
    assert "promotion.min_improvement gate" in err
    assert f"{other_accuracy:.4f}" in err and f"{champion_accuracy:.4f}" in err
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version

    code, _, err = _seqflow(capsys, "--env-file", env_file, "promote", other.version, "--force")
    assert code == 2 and "--force needs --reason" in err

    code, out, err = _seqflow(
        capsys, "--env-file", env_file, "promote", other.version, "--force", "--reason", "canary", *NO_FLOOR
    )
    assert code == 0, err
    assert "FORCED" in out
    promoted = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert promoted.version == other.version
    assert promoted.tags["promoted_via"] == "seqflow promote" and promoted.tags["promotion_forced"] == "true"
    assert promoted.tags["promotion_reason"] == "canary" and promoted.tags["previous_champion"] == str(champion.version)
    assert "does not beat champion" in promoted.tags["promotion_gates"]
    # The force is recorded with the paired test it overrode: both models scored now on the same test rows, and
    # McNemar's discordant rows account exactly for the two accuracies the evaluation recorded.
    tags = promoted.tags
    assert tags["promotion.test"] == "mcnemar_midp" and tags["promotion.champion_version"] == str(champion.version)
    only_other, only_champion = map(int, tags["promotion.discordant"].split("/"))
    rows = int(tags["promotion.paired_rows"])
    assert (only_other - only_champion) / rows == pytest.approx(other_accuracy - champion_accuracy, abs=1e-5)
    assert float(tags["promotion.difference"]) == pytest.approx(other_accuracy - champion_accuracy, abs=1e-5)
    assert float(tags["promotion.ci_low"]) <= float(tags["promotion.difference"]) <= float(tags["promotion.ci_high"])
    assert tags["promotion.significant"] == "false" and "95% CI" in tags["promotion_gates"]

    code, out, err = _seqflow(capsys, "--env-file", env_file, "rollback", "--reason", "canary misbehaves", *NO_FLOOR)
    assert code == 0, err
    restored = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert restored.version == champion.version
    assert restored.tags["promoted_via"] == "seqflow rollback" and restored.tags["previous_champion"] == str(other.version)
    assert restored.tags["promotion_reason"] == "canary misbehaves" and restored.tags["promotion_forced"] == "false"
    history = Tracker(store).champion_history()
    assert [(entry["version"], entry["action"]) for entry in history] == [
        (str(champion.version), "promote"), (str(other.version), "promote"), (str(champion.version), "rollback")
    ]

    # The first champion has nothing before it.
    code, _, err = _seqflow(capsys, "--env-file", env_file, "rollback")
    assert code == 2 and "nothing to roll back to" in err
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version


def test_gates_pass_and_floor_refuses(store, env_file, capsys):
    client, champion, other = _champion_and_other(store)
    name = store.registered_model_name
    code, _, err = _seqflow(
        capsys, "--env-file", env_file, "promote", other.version, "--set", "promotion.accuracy_floor=0.999"
    )
    assert code == 4
    assert "promotion.accuracy_floor gate" in err and "below the floor 0.9990" in err
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version

    # A margin of -1 lets it past the improvement gate, but not past the significance gate: it is no better.
    code, _, err = _seqflow(
        capsys, "--env-file", env_file, "promote", other.version, "--set", "promotion.min_improvement=-1",
        "--set", "promotion.require_significant=true", *NO_FLOOR,
    )
    assert code == 4 and "promotion.require_significant gate" in err and "not beyond noise" in err, err
    assert "95% CI" in err and "mcnemar_midp p=" in err and "--set promotion.require_significant=false" in err
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version

    # A margin of -1 lets any challenger above the floor through: promoted by the gates, not forced.
    code, out, err = _seqflow(
        capsys, "--env-file", env_file, "promote", other.version, "--set", "promotion.min_improvement=-1", *NO_FLOOR
    )
    assert code == 0, err
    promoted = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert promoted.version == other.version and promoted.tags["promotion_forced"] == "false"
    assert "beats champion" in promoted.tags["promotion_reason"]

    # Rolling back checks the floor of the version it goes back to.
    code, _, err = _seqflow(capsys, "--env-file", env_file, "rollback", "--set", "promotion.accuracy_floor=0.999")
    assert code == 4 and "rolling back to v" in err and "promotion.accuracy_floor gate" in err
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == other.version


def test_champion_measured_on_other_data_is_rescored_before_promote(store):
    """The gate compares on the challenger's test split: a champion from other data is scored, not trusted."""
    from seqflow.sentiment.registry import PromotionRefused, promote_version

    client, champion, other = _champion_and_other(store)
    name = store.registered_model_name
    # Pretend the champion came from other data, with a recorded accuracy the challenger would beat easily.
    client.set_model_version_tag(name, champion.version, "dataset_digest", "digest-of-other-data")
    client.set_model_version_tag(name, champion.version, "test_accuracy", "0.0")
    with pytest.raises(PromotionRefused) as refused:
        promote_version(Tracker(store), other.version, PromotionConfig(accuracy_floor=0.0))
    # Re-scored on the challenger's test split (the same rows it was measured on), it is the better one again.
    rescored = f"({float(champion.tags['test_accuracy']):.4f})"
    assert rescored in str(refused.value)


@pytest.mark.parametrize("failing_write", ["set_model_version_tag", "set_registered_model_tag"])
def test_alias_move_is_all_or_nothing(store, monkeypatch, failing_write):
    """The alias moves first; a failure writing the audit tags (after one succeeded) or the history undoes it all."""
    from seqflow.sentiment.registry import promote_version

    client, champion, other = _champion_and_other(store)
    name = store.registered_model_name
    tracker = Tracker(store)
    history_before = tracker.champion_history()
    real_write = getattr(tracker.client, failing_write)
    calls: list[str] = []

    def second_write_fails(*args, **kwargs):
        calls.append(args[-2])
        if len(calls) == 2 or failing_write == "set_registered_model_tag":
            raise RuntimeError("registry went away")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(tracker.client, failing_write, second_write_fails)
    with pytest.raises(TrackingError, match="nothing changed"):
        promote_version(tracker, other.version, PromotionConfig(accuracy_floor=0.0), reason="test", force=True)
    monkeypatch.undo()
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).version == champion.version
    assert client.get_model_version(name, other.version).tags == other.tags
    assert Tracker(store).champion_history() == history_before


def test_unknown_version_no_champion_and_nothing_to_serve(store, env_file, capsys):
    client, champion, other = _champion_and_other(store)
    code, _, err = _seqflow(capsys, "--env-file", env_file, "promote", "99")
    assert code == 2 and "has no version '99'" in err and "(versions: 1, 2)" in err
    code, _, err = _seqflow(capsys, "--env-file", env_file, "promote", champion.version)
    assert code == 2 and "already" in err

    client.delete_registered_model_alias(store.registered_model_name, CHAMPION_ALIAS)
    for command in (["champion"], ["rollback"], ["serve", "--port", str(free_port())]):
        code, _, err = _seqflow(capsys, "--env-file", env_file, *command)
        assert code == 2 and "has no 'champion' alias" in err, (command, err)


def test_predict_refuses_reviews_empty_after_tokenisation(store, env_file, capsys):
    code, out, err = _seqflow(capsys, "--env-file", env_file, "predict", "A wonderful film.", "", "!!! ...")
    assert code == 2 and out == "", err
    assert "seqflow: error: 2 of 3 review(s) are empty after tokenisation" in err
    assert "row 2 of 3 (''), row 3 of 3 ('!!! ...')" in err and "Traceback" not in err


def test_serve_scores_raw_reviews_over_http(store, env_file, tmp_path):
    with serving(["--env-file", env_file, "serve", "--max-request-mb", "0.05"], tmp_path) as (base_url, _):
        reviews = [
            "A wonderful film, the best acting I have seen all year.",
            "Awful. Boring and far too long; I walked out.",
            "Not bad at all.",
        ]
        url = f"{base_url}/invocations"
        records = post(url, {"dataframe_records": [{"text": text} for text in reviews]})["predictions"]
        split = post(url, {"dataframe_split": {"columns": ["text"], "data": [[text] for text in reviews]}})["predictions"]
        assert len(records) == len(reviews) == len(split)
        for row, same in zip(records, split):
            assert 0.0 <= row["probability"] <= 1.0 and row["label"] == int(row["probability"] >= 0.5)
            assert same["probability"] == pytest.approx(row["probability"])
        # The server answers what the champion answers in this process.
        import pandas as pd

        expected = Tracker(store).load_pyfunc(f"models:/{store.registered_model_name}@{CHAMPION_ALIAS}", REVIEW_SENTIMENT).predict(
            pd.DataFrame({"text": reviews})
        )
        assert [row["probability"] for row in records] == pytest.approx(expected["probability"].tolist(), abs=1e-6)

        # A review with no word left after tokenisation: the whole request is refused with HTTP 400, naming it.
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url, {"dataframe_records": [{"text": reviews[0]}, {"text": " ?! <br />"}]})
        assert refused.value.code == 400
        error = json.loads(refused.value.read())
        assert error["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "1 of 2 review(s) are empty after tokenisation" in error["message"]
        assert "row 2 of 2 (' ?! <br />')" in error["message"]

        # A body over --max-request-mb (50 KiB here) is refused unread, with HTTP 413.
        with pytest.raises(urllib.error.HTTPError) as too_large:
            post(url, {"dataframe_records": [{"text": reviews[0]}] * 2000})
        assert too_large.value.code == 413
        assert json.loads(too_large.value.read())["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_models_are_mlflow3_logged_models_with_dataset_inputs_source_and_user(store):
    """Issue 21 item 1: each version comes from a logged model of its child run (the Models tab), whose test
    metrics are linked to it; every child run has its splits as dataset inputs with context and digest."""
    client, champion, other = _champion_and_other(store)
    experiment = client.get_experiment_by_name(store.experiment_name)
    logged = {model.source_run_id: model for model in client.search_logged_models([experiment.experiment_id])}
    for version in (champion, other):
        model = logged[version.run_id]
        assert version.source == f"models:/{model.model_id}"
        assert {"name": store.registered_model_name, "version": int(version.version)} in json.loads(
            model.tags["mlflow.modelVersions"])
        assert str(model.status) in ("READY", "LoggedModelStatus.READY")
        assert model.tags["seqflow.model_digests"] == version.tags["seqflow.model_digests"]
        assert {"test_accuracy", "test_roc_auc"} <= {metric.key for metric in model.metrics}
        run = client.get_run(version.run_id)
        contexts = {
            entry.dataset.name: ({tag.key: tag.value for tag in entry.tags}["mlflow.data.context"], entry.dataset.digest)
            for entry in run.inputs.dataset_inputs
        }
        assert contexts == {
            f"reviews-{split}": (context, run.data.tags[f"{split}_digest"][:12])
            for split, context in (("train", "training"), ("validation", "validation"), ("test", "test"))
        }
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]
        # Trimmed: only the score is a version tag; the other test metrics are run (and logged-model) metrics.
        assert not {key for key in version.tags if key.startswith("test_")} - {"test_accuracy"}
        assert "resumed_from_epoch" in run.data.metrics and "resumed_from_epoch" not in run.data.tags


def test_card_is_the_version_description_an_artifact_and_printed(store, env_file, capsys):
    """Issue 21 item 2: the card is written at registration and `seqflow card VERSION` prints it."""
    client, champion, other = _champion_and_other(store)
    code, card, err = _seqflow(capsys, "--env-file", env_file, "card", champion.version)
    assert code == 0, err
    for heading in ("What it is", "Input and output", "Data", "Training", "Results", "Promotion decision", "Lineage",
                    "How to load and serve", "Known limits"):
        assert f"\n## {heading}\n" in card, heading
    accuracy = float(champion.tags["test_accuracy"])
    assert f"| accuracy | {accuracy:.4f} | [" in card and "Wilson" in card
    assert champion.run_id in card and champion.tags["parent_run_id"] in card and f"`{champion.source}`" in card
    assert f"**v{champion.version} is `champion`.**" in card and "| promoted_via | seqflow run |" in card
    assert client.get_model_version(store.registered_model_name, champion.version).description.startswith(
        f"# {store.registered_model_name} v{champion.version}: "
    )
    with_tracker = Tracker(store)
    assert with_tracker.read_text(other.run_id, "model_card.md").startswith(f"# {store.registered_model_name} v{other.version}")
    described = client.get_registered_model(store.registered_model_name).description
    assert "Champion history" in described and f"| v{champion.version} | promote |" in described

    code, out, err = _seqflow(capsys, "--env-file", env_file, "card", "99")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "has no version '99'" in err


def test_a_forced_promotion_and_gate_statistics_reach_the_cards(store, env_file, capsys):
    """Every ``promotion.*`` tag a gate records shows under "Promotion decision", whatever it is."""
    client, champion, other = _champion_and_other(store)
    client.set_model_version_tag(store.registered_model_name, other.version, "promotion.difference_ci", "[-0.01, 0.03]")
    code, _, err = _seqflow(capsys, "--env-file", env_file, "promote", other.version, "--force", "--reason", "a test",
                            *NO_FLOOR)
    assert code == 0, err
    # The whole card (the registry's description may be cut to MLflow's 5,000 characters, whole sections kept).
    code, card, err = _seqflow(capsys, "--env-file", env_file, "card", other.version)
    assert code == 0, err
    assert "| promotion.difference_ci | [-0.01, 0.03] |" in card and "| promotion_forced | true |" in card
    assert "| promotion_reason | a test |" in card
    description = client.get_model_version(store.registered_model_name, other.version).description
    assert description.startswith(card.split("\n", 1)[0])
    described = client.get_registered_model(store.registered_model_name).description
    assert f"| v{other.version} | promote |" in described and "a test" in described


def test_contract_results_are_summarised_where_they_are_logged(store):
    """Issue 21 item 4: a one-page summary per contract beside its Data Docs, the pass counts in the parent
    run's description."""
    client, champion, _ = _champion_and_other(store)
    parent = client.get_run(champion.tags["parent_run_id"])
    note = parent.data.tags["mlflow.note.content"]
    assert "**Data contracts**" in note and "expectations passed" in note
    tracker = Tracker(store)
    for contract in ("raw_reviews", "tokenised_reviews"):
        page = tracker.read_text(parent.info.run_id, f"contracts/{contract}/summary.html")
        assert page is not None and "<table>" in page and " expectations passed" in page, contract
        assert f"`{contract}`" in note
