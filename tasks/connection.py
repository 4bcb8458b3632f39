"""Which cluster the tasks talk to: one client per process and per access setting.

Tasks take plain names, not clients, so Prefect can render and record their parameters; they
reach the cluster through `cluster()`, a read-only view over one connection pool per
KubeAccess; the gate's writer is `tasks.changes.writer.cluster_writer()`.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import ClusterReader
from tasks.adapters.http_endpoints import HttpEndpoints
from tasks.adapters.workers import CeleryWorkers, Workers
from tasks.changes.writer import close_clusters, cluster_writer
from tasks.settings import CeleryBroker, KubeAccess, Settings

_lock = threading.Lock()
_http: list[HttpEndpoints] = []
_workers: dict[str, CeleryWorkers] = {}


def cluster(access: KubeAccess | None = None) -> ClusterReader:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), connected once, as
    the read-only view: only the gate changes anything (`tasks.changes.writer`)."""
    return cluster_writer(access)


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
    close_clusters()
    with _lock:
        for adapter in _workers.values():
            adapter.close()
        _workers.clear()
        for client in _http:
            client.close()
        _http.clear()
