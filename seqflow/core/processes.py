"""Which process owns something (an MLflow run, a training checkpoint), and whether that process is gone.

A process is named by host, pid and start time: after ``kill -9`` (or a crashed machine) nothing cleans up, so
the next ``seqflow run`` checks the owners of what it finds. The start time tells a pid that was reused by an
unrelated process from the original owner.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Iterator, Mapping

import psutil

HOST_TAG = "seqflow.host"
PID_TAG = "seqflow.pid"
STARTED_TAG = "seqflow.pid_started"
# Start times are read from the kernel in clock ticks; two reads of one process agree far better than this.
START_TIME_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    # Seconds since the epoch when the process started, as psutil reports it.
    started: float

    def as_tags(self) -> dict[str, str]:
        return {HOST_TAG: self.host, PID_TAG: str(self.pid), STARTED_TAG: f"{self.started:.3f}"}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> ProcessIdentity | None:
        """The owner recorded in ``tags``, or None when they do not name one (runs of other tools)."""
        try:
            return cls(host=tags[HOST_TAG], pid=int(tags[PID_TAG]), started=float(tags[STARTED_TAG]))
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return f"{self.pid} on {self.host}"


def current_host() -> str:
    return socket.gethostname()


def current_process() -> ProcessIdentity:
    return ProcessIdentity(host=current_host(), pid=os.getpid(), started=psutil.Process().create_time())


def is_gone(owner: ProcessIdentity) -> bool:
    """True only when ``owner`` ran on this host and has ended: its pid is free, a zombie, or now belongs to a
    process started at another time. Processes on other hosts cannot be checked from here: never gone."""
    if owner.host != current_host():
        return False
    try:
        process = psutil.Process(owner.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return abs(process.create_time() - owner.started) > START_TIME_TOLERANCE_S
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        # Another user's process holds the pid: it is alive, and we cannot tell whether it is the owner.
        return False


# prctl(2) option: the signal this process gets when the thread that started it ends (see die_with_parent).
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive seqflow, even after ``kill -9``: the kernel sends it
    SIGTERM when its parent ends (Linux; elsewhere nothing happens). The setting survives ``exec``; it is tied
    to the thread that starts the child, so start such children from a thread that lives as long as the process.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived. Raised like Ctrl-C's KeyboardInterrupt, so that every step's cleanup runs on
    the way out: open MLflow runs end KILLED, a registration in progress deletes its versions again."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_unwind() -> Iterator[None]:
    """While inside, SIGTERM and SIGINT raise :class:`Interrupted` in the main thread; the previous handlers
    are restored on exit. (Prefect swaps in its own SIGTERM handler while a flow runs; it raises Prefect's
    TerminationSignal, which unwinds the same way, and re-sends the signal to this handler afterwards.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
