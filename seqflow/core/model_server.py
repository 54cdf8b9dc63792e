"""``seqflow serve``: the champion behind MLflow's scoring server (``/ping``, ``/invocations``).

The server is MLflow's scoring app run by uvicorn in this environment (as ``mlflow models serve --env-manager
local`` runs it), behind a request size limit (:mod:`seqflow.core.scoring_app`), started as a child process
in its own process group; SIGINT and SIGTERM to ``seqflow serve`` stop it and everything it started, and it dies
with ``seqflow serve`` even after ``kill -9`` (a parent-death signal). Address, port and model are checked before
the child starts, so a mistake is one line, not the child's traceback.

The child serves a local folder prepared before it starts: the model's files checked against their recorded
digests, with seqflow's installed code file (see :mod:`seqflow.core.trusted_models`), and pickles refused; it never
reads the registry's artifact store itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seqflow.core.errors import SeqflowError
from seqflow.core.model_uris import refuse_missing_model
from seqflow.core.pipeline import Pipeline
from seqflow.core.processes import die_with_parent
from seqflow.core.runs import recover_before_reading
from seqflow.core.scoring_app import DEFAULT_MAX_REQUEST_BYTES
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import CHAMPION_ALIAS, Tracker
from seqflow.core.trusted_models import environment_without_pickles

MAX_PORT = 65535


def _listen_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple]:
    """The socket family and address ``host:port`` binds to, or one line saying which of the two is wrong."""
    if not 1 <= port <= MAX_PORT:
        raise SeqflowError(f"--port {port} is not a TCP port: pass one from 1 to {MAX_PORT}")
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SeqflowError(
            f"--host {host!r} is not an address or name this machine can resolve ({reason}): pass an address of "
            "this machine, e.g. 127.0.0.1"
        ) from None
    return family, address


def _check_port_free(host: str, port: int) -> None:
    family, address = _listen_address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: connections of an earlier server in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise SeqflowError(
                    f"cannot listen on {host}:{port}: {host} is not an address of this machine; pass one of its "
                    "addresses as --host, e.g. 127.0.0.1"
                ) from None
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
    settings: TrackingSettings,
    host: str,
    port: int,
    model_uri: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    *,
    pipeline: Pipeline,
) -> int:
    """Serve ``model_uri`` (default: the ``pipeline``'s champion) on ``host:port`` until stopped; 0 when stopped
    by a signal. ``settings`` are the pipeline's own (:attr:`Pipeline.tracking_settings`). Requests with a body
    over ``max_request_bytes`` are answered 413 without being read further."""
    if max_request_bytes < 1:
        raise SeqflowError(f"the request size limit must be positive, got {max_request_bytes} bytes")
    # Address and port first: a typo there (or a busy port) should not wait for the store and the model.
    _check_port_free(host, port)
    tracker = Tracker(settings, existing=True)
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
    else:
        # Before the child starts: its traceback would be the only report.
        refuse_missing_model(tracker.client, model_uri, settings.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="seqflow-serve-") as scratch:
        served = tracker.prepare_served_model(model_uri, pipeline.pyfunc.kind(), Path(scratch))
        # The environment `mlflow models serve` would get (tracking URI, PATH); the process is MLflow's scoring
        # app behind seqflow's request size limit, which `mlflow models serve` has no option for.
        _, environment = tracker.model_server_command(str(served), host, port)
        command = [
            sys.executable, "-m", "seqflow.core.scoring_app", str(served), "--host", host, "--port", str(port),
            "--max-request-bytes", str(max_request_bytes),
        ]
        print(f"POST to http://{host}:{port}/invocations, e.g. {pipeline.pyfunc.request_example}", flush=True)
        return _run_server(command, environment_without_pickles(environment))


def _run_server(command: list[str], environment: dict[str, str]) -> int:
    server = subprocess.Popen(command, env=environment, start_new_session=True, preexec_fn=die_with_parent)
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
