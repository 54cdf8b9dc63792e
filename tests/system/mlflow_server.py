"""Start ``mlflow server`` on 127.0.0.1 for a test, wait until it answers /health, and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

# A cold `mlflow server` start imports a lot; on a busy 2-core machine that can take minutes.
SERVER_START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(log_path: Path, characters: int = 4000) -> str:
    return log_path.read_text(errors="replace")[-characters:] if log_path.exists() else ""


@contextlib.contextmanager
def running_mlflow_server(store_args: list[str], port: int, log_path: Path, cwd: Path | None = None) -> Iterator[str]:
    """``mlflow server STORE_ARGS --host 127.0.0.1 --port PORT``; yields its URL once /health answers, fails the
    test with the server's log if it exits or stays unhealthy, and stops it (and its workers) on exit."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", *store_args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # The server must not pick up a tracking URI that earlier tests left in the environment.
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    with log_path.open("wb") as log:
        # Its own session: teardown signals the server and the workers it spawns as one process group.
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode}:\n{log_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S} s:\n{log_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
