"""`seqflow [charlm] serve` in a child process, as a user starts it: wait for /ping, POST JSON, stop it with
SIGTERM and check it went down cleanly (used by the sentiment and the character-model serve tests)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

# Starting the server imports TensorFlow and loads the model: slow on a busy 2-core machine.
SERVER_START_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def serving(arguments: list[str], folder: Path) -> Iterator[tuple[str, Path]]:
    """``python -m seqflow.cli *arguments --port PORT`` until it answers /ping; yields (its base URL, its log).
    On exit: SIGTERM, and the server must have stopped with code 0, no traceback, and its port free."""
    port = free_port()
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "seqflow.cli", *arguments, "--port", str(port)],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "model server did not answer /ping:\n" + log_path.read_text()[-3000:]
            time.sleep(2)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(timeout=60)
    output = log_path.read_text()
    assert returncode == 0, output[-3000:]
    assert "Traceback" not in output and "model server stopped" in output
    # The server process group is gone with it: nothing listens on the port (closed connections may linger).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
