"""Prefect's temporary API server, started so that it never outlives the seqflow process that needs it.

Without ``PREFECT_API_URL``, Prefect starts a temporary server (uvicorn, ~240 MB and a port) the first time a
process needs its API, and stops it from an ``atexit`` hook. After ``kill -9`` (or a SIGTERM that ends Python
without running ``atexit``) that hook never runs and the server runs on forever. Here the server is started by
seqflow itself, in the main thread, before any flow, with the Linux parent-death signal set in the child, so the
kernel stops it whenever its parent ends. Prefect keeps one server instance per process (per port): every
later ``SubprocessASGIServer()`` of Prefect's own code is this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from seqflow.core.processes import die_with_parent

# Seconds the temporary server may take to answer. Measured on a shared 2-core machine (BENCHMARKS.md, "Prefect
# temporary server start-up"): 15-23 s at load 3, where Prefect's own default, 20 s, failed runs; at load 15
# (two runs starting at once among other jobs) even 90 s was missed. The test suite's servers get 120-180 s.
SERVER_STARTUP_TIMEOUT_S = 180
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def startup_timeout_s() -> int:
    """The start-up limit: ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` if set, else seqflow's default."""
    value = os.environ.get(STARTUP_TIMEOUT_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else SERVER_STARTUP_TIMEOUT_S


class _SubprocessDyingWithParent:
    """The ``subprocess`` module as Prefect's server module sees it while it starts uvicorn: every ``Popen``
    gets :func:`die_with_parent`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:  # noqa: N802 - stands in for subprocess.Popen
        return subprocess.Popen(*args, preexec_fn=die_with_parent, **kwargs)


def _server_class() -> type:
    from prefect.server.api.server import SubprocessASGIServer

    class ServerDyingWithParent(SubprocessASGIServer):
        """Prefect's temporary server whose uvicorn process gets SIGTERM when this process ends."""

        def _run_uvicorn_command(self) -> subprocess.Popen:
            # Prefect builds the command (its arguments and environment change between releases); only the
            # Popen it calls is swapped, in its own module, for the duration of this call.
            module = sys.modules[SubprocessASGIServer.__module__]
            saved = module.subprocess
            module.subprocess = _SubprocessDyingWithParent()
            try:
                return super()._run_uvicorn_command()
            finally:
                module.subprocess = saved

    return ServerDyingWithParent


def uses_temporary_server() -> bool:
    """True when this process would start a temporary Prefect server (no ``PREFECT_API_URL``)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def start_temporary_server() -> Any | None:
    """Start the temporary server this process's flows will use, now, from this thread, so that it dies with
    the process; None when a Prefect API is configured. Call it from the main thread: the parent-death signal
    fires when the starting thread ends."""
    if not uses_temporary_server() or threading.current_thread() is not threading.main_thread():
        # From another thread (seqflow's main() called by a program that is not a CLI), Prefect starts the server
        # itself when first needed, as it always did: a signal tied to a short-lived thread could stop it early.
        return None
    from prefect.server.api.server import SubprocessASGIServer

    # Prefect's instance for "any free port" (None); created by seqflow before Prefect's own code asks for it.
    server = _server_class()() if None not in SubprocessASGIServer._instances else SubprocessASGIServer()
    # Stopped by Prefect's own atexit hook on a normal exit (also after SIGTERM, which seqflow turns into an
    # exception that unwinds), and by the kernel after kill -9.
    server.start(timeout=startup_timeout_s())
    return server
