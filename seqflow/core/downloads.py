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
