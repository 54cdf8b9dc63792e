"""Issue 23 items 17 and 9: commands that read a store never create one, refuse a missing or empty one in one
line, and open a read-only one; commands that write name a read-only folder and the setting that moves it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqflow.cli import main
from seqflow.core.settings import TrackingSettings
from seqflow.core.stores import StoreMissing, require_writable
from seqflow.core.tracking import Tracker
from tests.conftest import new_empty_store

# Commands that read a store (or change its registry) and so must never create one.
STORE_READING_COMMANDS = [
    ["champion"],
    ["predict", "a fine film"],
    ["generate", "--length", "5"],
    ["promote", "1"],
    ["rollback"],
    ["serve", "--port", "5999"],
]


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, with no mlflow.env and no store; MLflow settings of the environment unset."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SEQFLOW_ARTIFACTS_DIR", "SEQFLOW_ARTIFACT_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", STORE_READING_COMMANDS, ids=lambda command: command[0])
def test_reading_commands_refuse_a_missing_store_and_create_none(empty_folder: Path, capsys, command: list[str]) -> None:
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no MLflow store at" in error and "MLFLOW_TRACKING_URI" in error, error
    assert sorted(os.listdir(empty_folder)) == []


@pytest.mark.parametrize("command", STORE_READING_COMMANDS[:3], ids=lambda command: command[0])
def test_reading_commands_refuse_an_empty_store_and_leave_it_as_it_is(empty_folder: Path, capsys, command: list[str]) -> None:
    (empty_folder / "mlflow.db").touch()
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "is an empty file" in error, error
    assert (empty_folder / "mlflow.db").stat().st_size == 0
    assert sorted(os.listdir(empty_folder)) == ["mlflow.db"]


def test_tracker_for_an_existing_store_neither_locks_nor_creates_the_experiment(tmp_path: Path) -> None:
    new_empty_store(tmp_path / "mlflow.db")
    settings = TrackingSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="never-made")
    tracker = Tracker(settings, existing=True)
    assert tracker.experiment_id is None and tracker.champion() is None
    assert tracker.client.get_experiment_by_name("never-made") is None
    assert sorted(os.listdir(tmp_path)) == ["mlflow.db"]
    with pytest.raises(StoreMissing):
        Tracker(TrackingSettings(tracking_uri=f"sqlite:///{tmp_path / 'other.db'}"), existing=True)


def test_writable_check_names_the_folder_and_the_setting(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    require_writable([(tmp_path / "not" / "yet", "SETTING")])
    with pytest.raises(Exception, match=r"cannot write to .*file.* is not a folder.*move this with SETTING"):
        require_writable([(a_file / "below", "SETTING")])


# --- a read-only working directory: a read-only bind mount in a private mount namespace (root ignores
# permission bits, but not a read-only filesystem) -------------------------------------------------------------


def _read_only_mounts_work() -> bool:
    if sys.platform != "linux" or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -o bind,ro /tmp /tmp && ! touch /tmp/.seqflow-ro-probe"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_read_only_mounts = pytest.mark.skipif(
    not _read_only_mounts_work(), reason="needs `unshare -m` and bind mounts (root or user namespaces)"
)


def _seqflow_in_read_only(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``seqflow ARGS`` with ``folder`` (its working directory) mounted read-only for it alone."""
    script = 'mount -o bind,ro "$0" "$0" && cd "$0" && exec "$1" -m seqflow.cli "${@:2}"'
    environment = {**os.environ, **(env or {})}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SEQFLOW_ARTIFACTS_DIR", "SEQFLOW_ARTIFACT_LOCATION"):
        if not env or name not in env:
            environment.pop(name, None)
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        ["unshare", "-m", "bash", "-c", script, str(folder), sys.executable, *args],
        capture_output=True, text=True, env=environment, timeout=300,
    )


@needs_read_only_mounts
def test_champion_reads_a_store_in_a_read_only_folder(tmp_path: Path) -> None:
    new_empty_store(tmp_path / "mlflow.db")
    before = sorted(os.listdir(tmp_path))
    done = _seqflow_in_read_only(tmp_path, "champion")
    assert "Traceback" not in done.stderr and "cannot use MLflow tracking store" not in done.stderr, done.stderr
    assert "champion" in (done.stdout + done.stderr).lower()
    assert sorted(os.listdir(tmp_path)) == before


@needs_read_only_mounts
@pytest.mark.parametrize(
    ("command", "artifacts_elsewhere", "named"),
    [
        (["validate"], False, "SEQFLOW_ARTIFACTS_DIR"),
        (["run"], False, "SEQFLOW_ARTIFACTS_DIR"),
        (["run"], True, "MLFLOW_TRACKING_URI"),
        (["charlm", "run"], False, "SEQFLOW_ARTIFACTS_DIR"),
    ],
)
def test_writing_commands_in_a_read_only_folder_name_it_and_the_setting(
    tmp_path: Path, command: list[str], artifacts_elsewhere: bool, named: str
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    env = {"SEQFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts")} if artifacts_elsewhere else None
    done = _seqflow_in_read_only(folder, *command, env=env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("seqflow: error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and str(folder) in errors[0] and named in errors[0] and "read-only" in errors[0], done.stderr
    assert os.listdir(folder) == []
