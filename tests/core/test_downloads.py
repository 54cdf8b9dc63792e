"""The offline check before a run-time download: a failed or hanging name lookup is "no network", quickly."""

from __future__ import annotations

import time

import pytest

from seqflow.core import downloads


def test_network_probe_is_false_when_dns_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args, **kwargs):  # noqa: ANN002, ANN003
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(downloads.socket, "getaddrinfo", no_dns)
    assert downloads.network_reaches("ai.stanford.edu") is False


def test_network_probe_gives_up_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def hanging_dns(*args, **kwargs):  # noqa: ANN002, ANN003
        time.sleep(3)
        return []

    monkeypatch.setattr(downloads.socket, "getaddrinfo", hanging_dns)
    started = time.monotonic()
    assert downloads.network_reaches("ai.stanford.edu", timeout_s=0.2) is False
    assert time.monotonic() - started < 2
