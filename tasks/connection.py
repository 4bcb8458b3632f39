"""Which cluster the tasks talk to: one client per process and per access setting.

Tasks take plain names, not clients, so Prefect can render and record their parameters; they
reach the cluster through `cluster()`, a `ReadOnlyCluster`: a separate object with only the
reads, over the connection pool of `tasks.adapters.pool`. The object that can write is not
reachable from here: the gate gets it from `tasks.changes.writer.cluster_writer()`, and
import-linter lets nothing else import the pool or the Kubernetes implementation.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import ClusterReader, ReadOnlyCluster
from tasks.adapters.http_endpoints import HttpEndpoints
from tasks.adapters.pool import close_pooled, pooled_cluster
from tasks.adapters.workers import CeleryWorkers, Workers
from tasks.settings import CeleryBroker, KubeAccess, Settings

_lock = threading.Lock()
_http: list[HttpEndpoints] = []
_workers: dict[str, CeleryWorkers] = {}


def cluster(access: KubeAccess | None = None) -> ClusterReader:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), read-only: a view
    with the `ClusterReader` methods and no other, over the process's pooled connection."""
    return ReadOnlyCluster(pooled_cluster(access or Settings().kube))


def http_endpoints() -> HttpEndpoints:
    """The JWKS and control-plane client, one per process."""
    with _lock:
        if not _http:
            _http.append(HttpEndpoints(timeout=Settings().kube.request_timeout_seconds))
        return _http[0]


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
        for client in _http:
            client.close()
        _http.clear()
