"""Before a download at run time: is the network there at all? (TFDS and keras.datasets retry for minutes
offline; a cheap name lookup first turns that into one clear error.)"""

from __future__ import annotations

import concurrent.futures
import socket

# Seconds to wait for a DNS answer before declaring the machine offline (TFDS itself retries for minutes).
NETWORK_PROBE_TIMEOUT_S = 5.0


def network_reaches(host: str, timeout_s: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    """Whether ``host`` resolves within ``timeout_s``; a cheap offline check before a library's long retries."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(socket.getaddrinfo, host, 443).result(timeout=timeout_s)
        return True
    except (OSError, concurrent.futures.TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)


def _first_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, or its type when it has no message."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def tfds_builder(name: str, data_dir: str | None, unusable_hint: str = ""):  # noqa: ANN201 - a TFDS builder
    """The TFDS builder of ``name`` in ``data_dir``; a missing tensorflow-datasets or a name TFDS refuses is one
    DataSourceError line (ending in ``unusable_hint``), not TFDS' traceback."""
    from seqflow.core.errors import DataSourceError

    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise DataSourceError(f"tfds sources need tensorflow-datasets: {exc}") from None
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # an unknown config or version: TFDS raises ValueError or AssertionError
        raise DataSourceError(f"tfds source {name!r} cannot be used: {_first_line(exc)}{unusable_hint}") from None


def prepare_tfds(builder, name: str, **download_options) -> None:  # noqa: ANN001, ANN003 - TFDS types
    """Download and prepare ``builder``'s data; a failure is one DataSourceError line."""
    from seqflow.core.errors import DataSourceError

    try:
        builder.download_and_prepare(**download_options)
    except Exception as exc:  # TFDS raises many unrelated types; the user needs one clear line.
        raise DataSourceError(f"tfds:{name} could not be prepared: {type(exc).__name__}: {_first_line(exc)}") from None
