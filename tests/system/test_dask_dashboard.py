"""Issue 23 item 3: the local Dask cluster of ``--runner dask`` listens on loopback only, dashboard included."""

from __future__ import annotations

import ipaddress

from seqflow.core.config import ExecutionConfig
from seqflow.core.execution import local_cluster_kwargs


def test_local_cluster_dashboard_and_scheduler_listen_on_loopback_only() -> None:
    import distributed

    kwargs = {**local_cluster_kwargs(ExecutionConfig(runner="dask", workers=1)), "n_workers": 0}
    with distributed.LocalCluster(**kwargs) as cluster:
        scheduler = cluster.scheduler
        dashboard_hosts = {socket.getsockname()[0] for socket in scheduler.http_server._sockets.values()}
        scheduler_host = scheduler.address.split("://")[1].rsplit(":", 1)[0]
    assert dashboard_hosts, "the dashboard should be running"
    assert all(ipaddress.ip_address(host).is_loopback for host in dashboard_hosts), dashboard_hosts
    assert ipaddress.ip_address(scheduler_host).is_loopback
