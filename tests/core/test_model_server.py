"""Issue 23 item 14: ``seqflow serve`` checks port, address and model before it starts the model server, and
says which one is wrong in one line (no OverflowError, no child traceback, no advice to change the port for a
bad address)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqflow.cli import main
from tests.conftest import new_empty_store


@pytest.fixture
def store_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    new_empty_store(tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_error_line(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("seqflow: error:"), error
    return error


@pytest.mark.parametrize("port", ["70000", "-1", "0", "65536"])
def test_port_out_of_range_is_one_line(store_folder: Path, capsys, port: str) -> None:
    assert main(["serve", "--port", port, "--model-uri", "models:/any/1"]) == 2
    error = _one_error_line(capsys)
    assert f"--port {port} is not a TCP port" in error and "65535" in error


@pytest.mark.parametrize("host", ["999.1.1.1", "no such host.invalid"])
def test_unresolvable_host_names_the_host_not_the_port(store_folder: Path, capsys, host: str) -> None:
    assert main(["serve", "--host", host, "--port", "5987", "--model-uri", "models:/any/1"]) == 2
    error = _one_error_line(capsys)
    assert "--host" in error and host in error and "another --port" not in error


def test_address_of_another_machine_names_the_host(store_folder: Path, capsys) -> None:
    # TEST-NET-1 (RFC 5737): a valid address that is never this machine's.
    assert main(["serve", "--host", "192.0.2.1", "--port", "5987", "--model-uri", "models:/any/1"]) in (2,)
    error = _one_error_line(capsys)
    assert "--host" in error and "another --port" not in error


@pytest.mark.parametrize("model_uri", ["models:/nope/1", "models:/nope@champion", "runs:/0123456789abcdef/model"])
def test_unknown_model_is_one_line_before_any_child_starts(store_folder: Path, capsys, monkeypatch, model_uri: str) -> None:
    import subprocess

    started: list[object] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: started.append(args))
    assert main(["serve", "--port", "5987", "--model-uri", model_uri]) == 2
    error = _one_error_line(capsys)
    assert f"model {model_uri!r} does not exist" in error
    assert started == []
