"""Run lifecycle and dead-owner recovery (seqflow.core.runs) on a SQLite store without Prefect, the split of the
tracker into its concerns, and the clean-up the commands that read the champion run first (issue 23 item 16)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import seqflow.core
from seqflow.cli import main
from seqflow.core.model_registry import CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG, ModelRegistry
from seqflow.core.processes import ProcessIdentity
from seqflow.core.runs import ROLE_TAG, RunLifecycle, close_runs_of_dead_executions, recover_before_reading
from seqflow.core.tracking import Tracker
from tests.core.conftest import settings_in

# The core and the tracker's concerns: none of them may import a pipeline.
CORE_DIR = Path(seqflow.core.__file__).parent
SPLIT_MODULES = ("store", "runs", "run_logging", "model_registry", "models", "registry", "pipeline", "tracking", "executions",
                 "model_server")


@pytest.mark.parametrize("module", SPLIT_MODULES)
def test_the_tracking_and_registry_core_imports_no_pipeline(module):
    tree = ast.parse((CORE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert [name for name in imported if name.startswith(("seqflow.sentiment", "seqflow.charlm", "seqflow.serving"))] == []


@pytest.mark.parametrize("module", SPLIT_MODULES)
def test_no_split_module_is_over_450_lines(module):
    assert len((CORE_DIR / f"{module}.py").read_text(encoding="utf-8").splitlines()) <= 450


def test_each_concern_works_on_its_own(tmp_path):
    """The registry needs no run logging or serving code: the concerns are separate classes."""
    settings = settings_in(tmp_path)
    runs = RunLifecycle(settings)
    run_id = runs.start_run("alone", {ROLE_TAG: "architecture"})
    runs.end_run(run_id)
    registry = ModelRegistry(settings)
    assert registry.champion() is None and registry.champion_history() == []
    assert not hasattr(registry, "log_metrics") and not hasattr(registry, "load_pyfunc")


def _killed_while_registering(tracker: Tracker, dead: ProcessIdentity, role: str, champion_before: str | None) -> str:
    """What `kill -9` while registering leaves: a RUNNING parent of a dead process, its version registered and
    champion (tagged with the champion it replaced); returns that version."""
    name = tracker.settings.registered_model_name
    parent = tracker.client.create_run(tracker.experiment_id, "killed", tags={ROLE_TAG: role, **dead.as_tags()}).info.run_id
    version = tracker.client.create_model_version(name, "runs:/x/model", None, tags={"parent_run_id": parent})
    tracker.client.set_model_version_tag(name, version.version, PREVIOUS_CHAMPION_TAG, champion_before or "")
    tracker.client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    return str(version.version)


def _finished_champion(tracker: Tracker) -> str:
    name = tracker.settings.registered_model_name
    tracker.client.create_registered_model(name)
    parent = tracker.start_run("finished", {ROLE_TAG: "pipeline"})
    tracker.end_run(parent)
    version = tracker.client.create_model_version(
        name, "runs:/x/model", parent, tags={"parent_run_id": parent, "architecture": "lstm"}
    )
    tracker.client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    return str(version.version)


def test_a_charlm_execution_killed_while_registering_is_cleaned_up_through_the_core(tracker, dead_process):
    before = _finished_champion(tracker)
    killed = _killed_while_registering(tracker, dead_process, "charlm-pipeline", before)
    assert close_runs_of_dead_executions(tracker) == [killed]
    assert str(tracker.champion().version) == before


def test_reading_goes_on_with_a_warning_when_the_clean_up_cannot_write(tracker, dead_process, monkeypatch, caplog):
    before = _finished_champion(tracker)
    _killed_while_registering(tracker, dead_process, "pipeline", before)

    def read_only(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("attempt to write a readonly database")

    monkeypatch.setattr(tracker.client, "set_tag", read_only)
    with caplog.at_level("WARNING"):
        recover_before_reading(tracker)
    assert "could not check 'seqflow-test-sentiment' for versions of executions that were killed" in caplog.text
    assert "OSError: attempt to write a readonly database" in caplog.text


def _env_file(tracker: Tracker, folder: Path) -> str:
    path = folder / "test.env"
    path.write_text(
        f"MLFLOW_TRACKING_URI={tracker.settings.tracking_uri}\n"
        f"MLFLOW_EXPERIMENT_NAME={tracker.settings.experiment_name}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={tracker.settings.registered_model_name}\n"
    )
    return str(path)


def test_champion_never_shows_a_version_of_an_execution_killed_while_registering(tracker, dead_process, tmp_path, capsys):
    before = _finished_champion(tracker)
    killed = _killed_while_registering(tracker, dead_process, "pipeline", before)

    assert main(["--env-file", _env_file(tracker, tmp_path), "champion", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == before != killed
    assert not tracker.version_exists(killed)


def test_serve_never_serves_a_version_of_a_first_execution_killed_while_registering(tracker, dead_process, tmp_path, capsys):
    tracker.client.create_registered_model(tracker.settings.registered_model_name)
    _killed_while_registering(tracker, dead_process, "pipeline", None)
    # Refused before anything listens: the only version was never finished, so there is no champion.
    code = main(["--env-file", _env_file(tracker, tmp_path), "serve", "--port", "1"])
    assert code == 2 and "has no 'champion' alias" in capsys.readouterr().err


def test_charlm_champion_cleans_up_the_charlm_registry_first(tmp_path, dead_process, capsys):
    sentiment_settings = settings_in(tmp_path)
    charlm = Tracker(sentiment_settings.for_charlm())
    before = _finished_champion(charlm)
    _killed_while_registering(charlm, dead_process, "charlm-pipeline", before)

    env_file = tmp_path / "charlm.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={sentiment_settings.tracking_uri}\nMLFLOW_EXPERIMENT_NAME=seqflow-test\n"
        "SEQFLOW_REGISTERED_MODEL_NAME=seqflow-test-sentiment\n"
        # The registered model the charlm registry above uses (by default the CLI derives one from the corpus).
        f"SEQFLOW_CHARLM_MODEL_NAME={charlm.settings.registered_model_name}\n"
    )
    assert main(["--env-file", str(env_file), "charlm", "champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == before
