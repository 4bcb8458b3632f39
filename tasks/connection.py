"""Which cluster the tasks talk to: one client per process and per access setting.

Tasks take plain names, not clients, so Prefect can render and record their parameters; they
reach the cluster through `cluster()`, a `ReadOnlyCluster`: a separate object with only the
reads, over the connection pool of `tasks.adapters.pool`, and JWKS through `http_endpoints()`,
likewise without the control plane's scale. The objects that can write are not reachable from
here: the gate gets them from `tasks.changes.writer`, and import-linter lets nothing else import
the pool or the Kubernetes implementation.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import ClusterReader, ReadOnlyCluster
from tasks.adapters.http_endpoints import HttpEndpoints, JwksAnswer
from tasks.adapters.pool import close_pooled, pooled_cluster, pooled_endpoints
from tasks.adapters.workers import CeleryWorkers, Workers
from tasks.settings import CeleryBroker, KubeAccess, Settings

_lock = threading.Lock()
_workers: dict[str, CeleryWorkers] = {}


def cluster(access: KubeAccess | None = None) -> ClusterReader:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), read-only: a view
    with the `ClusterReader` methods and no other, over the process's pooled connection."""
    return ReadOnlyCluster(pooled_cluster(access or Settings().kube))


class JwksEndpoint:
    """The HTTP read the probes make, JWKS from where the flows run, over the process's pooled
    `HttpEndpoints`; the control plane's scale is not here (`tasks.changes.writer`)."""

    __slots__ = ("_reads",)

    def __init__(self, pooled: HttpEndpoints) -> None:
        self._reads = pooled

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def jwks(self, url: str) -> JwksAnswer:
        return self._reads.jwks(url)


def http_endpoints() -> JwksEndpoint:
    """JWKS over the process's one HTTP client, read-only."""
    return JwksEndpoint(pooled_endpoints(Settings().kube.request_timeout_seconds))


def workers(broker: CeleryBroker | None = None) -> Workers:
    """Runbook C's Celery workers and their broker (default: REMEDIATE_CELERY__*), one client
    per broker URL and process."""
    broker = broker or Settings().celery
    key = broker.broker_url.get_secret_value()
    with _lock:
        if key not in _workers:
            _workers[key] = CeleryWorkers(broker)
        return _workers[key]


def close_all() -> None:
    close_pooled()
    with _lock:
        for adapter in _workers.values():
            adapter.close()
        _workers.clear()
