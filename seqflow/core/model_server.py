"""``seqflow serve``: the champion behind MLflow's scoring server (``/ping``, ``/invocations``).

The server is ``mlflow models serve`` in this environment (``--env-manager local``), started as a child process
in its own process group; SIGINT and SIGTERM to ``seqflow serve`` stop it and everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

from seqflow.core.errors import SeqflowError
from seqflow.core.pipeline import Pipeline
from seqflow.core.runs import recover_before_reading
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import CHAMPION_ALIAS, Tracker


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: connections of an earlier server in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SeqflowError(f"cannot listen on {host}:{port}: {exc.strerror}; pass another --port") from None


# How long the scoring server may take to finish its requests and exit after the `mlflow` process has gone.
SHUTDOWN_GRACE_SECONDS = 30


def _wait_for_group_exit(process_group: int) -> None:
    """Wait until every process of the server's group (uvicorn outlives the `mlflow` CLI briefly) has exited,
    so the port is free when ``seqflow serve`` returns; kill what is left after the grace period."""
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(process_group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process_group, signal.SIGKILL)


def serve_model(
    settings: TrackingSettings, host: str, port: int, model_uri: str | None = None, *, pipeline: Pipeline
) -> int:
    """Serve ``model_uri`` (default: the ``pipeline``'s champion) on ``host:port`` until stopped; 0 when stopped
    by a signal. ``settings`` are the pipeline's own (:attr:`Pipeline.tracking_settings`)."""
    tracker = Tracker(settings)
    if model_uri is None:
        # Never serve a version of an execution that was killed while registering.
        recover_before_reading(tracker)
        champion = tracker.champion()
        if champion is None:
            raise SeqflowError(
                f"registered model {settings.registered_model_name!r} has no {CHAMPION_ALIAS!r} alias in "
                f"{settings.tracking_uri}; run `{pipeline.via_run}` first or pass --model-uri"
            )
        model_uri = f"models:/{settings.registered_model_name}@{CHAMPION_ALIAS}"
        # The alias is resolved once, at start: a later promotion is served after a restart.
        print(f"serving {model_uri} = v{champion.version} ({(champion.tags or {}).get('architecture', '?')})")
    _check_port_free(host, port)
    command, environment = tracker.model_server_command(model_uri, host, port)
    print(f"POST to http://{host}:{port}/invocations, e.g. {pipeline.pyfunc.request_example}", flush=True)
    server = subprocess.Popen(command, env=environment, start_new_session=True)
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        try:
            # SIGTERM, also for Ctrl-C: the server's own shutdown, without KeyboardInterrupt tracebacks.
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        returncode = server.wait()
        _wait_for_group_exit(server.pid)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopping:
        print("model server stopped")
        return 0
    if returncode != 0:
        raise SeqflowError(f"the model server exited with code {returncode} (its output is above)")
    return 0
