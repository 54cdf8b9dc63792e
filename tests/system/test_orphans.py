"""Issue 23 item 5: no process outlives seqflow. Prefect's temporary server and MLflow's model server end when
the seqflow process that started them ends, by kill -9 or SIGTERM, and SIGTERM unwinds every command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import register_tiny_sentiment_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"),
]

REPO = Path(__file__).resolve().parents[2]
# How long a child may take to notice its parent is gone and exit (uvicorn finishes its shutdown first).
CHILD_EXIT_TIMEOUT_S = 30
START_TIMEOUT_S = 240


def _environment(folder: Path, **extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_API", "MLFLOW_"))}
    environment.update(
        PYTHONPATH=str(REPO), SEQFLOW_ARTIFACTS_DIR=str(folder / "artifacts"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", **extra,
    )
    return environment


def _seqflow(folder: Path, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seqflow.cli", *args], cwd=folder, env=_environment(folder, **extra),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_for_descendants(process: subprocess.Popen, matches, timeout_s: float = START_TIMEOUT_S) -> list[psutil.Process]:
    """The descendants of ``process`` once one of them matches ``matches(cmdline)``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        descendants = psutil.Process(process.pid).children(recursive=True)
        with_lines = []
        for child in descendants:
            try:
                with_lines.append((child, " ".join(child.cmdline())))
            except psutil.NoSuchProcess:
                continue
        if any(matches(line) for _, line in with_lines):
            return [child for child, _ in with_lines]
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"no matching child process started: {process.stdout.read()}")


def _assert_all_end(processes: list[psutil.Process]) -> None:
    gone, alive = psutil.wait_procs(processes, timeout=CHILD_EXIT_TIMEOUT_S)
    for process in alive:
        process.kill()
    assert alive == [], f"still running after their parent ended: {[' '.join(p.cmdline()) for p in alive]}"


def _is_prefect_server(cmdline: str) -> bool:
    return "uvicorn" in cmdline and "prefect.server.api.server:create_app" in cmdline


@pytest.mark.parametrize(("command", "how"), [("run", signal.SIGKILL), ("validate", signal.SIGKILL), ("validate", signal.SIGTERM)])
def test_prefect_temporary_server_ends_with_seqflow(tmp_path: Path, command: str, how: signal.Signals) -> None:
    seqflow = _seqflow(tmp_path, command)
    children = _wait_for_descendants(seqflow, _is_prefect_server)
    seqflow.send_signal(how)
    returncode = seqflow.wait(timeout=120)
    # Before reading the output: a child that lives on holds the pipe open.
    _assert_all_end(children)
    output = seqflow.stdout.read()
    if how == signal.SIGTERM:
        # Unwound like Ctrl-C: one line, no traceback.
        assert returncode == 128 + signal.SIGTERM and "Traceback" not in output, output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_model_server_ends_with_seqflow_serve_after_kill_9(tmp_path: Path) -> None:
    settings, _, model_uri, _ = register_tiny_sentiment_model(tmp_path)
    tracking_uri = settings.tracking_uri
    port = _free_port()
    seqflow = _seqflow(
        tmp_path, "serve", "--port", str(port), "--model-uri", model_uri,
        MLFLOW_TRACKING_URI=tracking_uri,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert seqflow.poll() is None and time.monotonic() < deadline, seqflow.stdout.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            time.sleep(1)
    children = psutil.Process(seqflow.pid).children(recursive=True)
    assert children
    seqflow.kill()
    seqflow.wait(timeout=30)
    _assert_all_end(children)
    # The next `seqflow serve` can have the port (binding as uvicorn does: the /ping connection may be in TIME_WAIT).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
