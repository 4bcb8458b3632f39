"""Which cluster the tasks talk to: one client per process and per access setting.

Tasks take plain names, not clients, so Prefect can render and record their parameters; they
reach the cluster through `cluster()`, a read-only view over one connection pool per
KubeAccess; the gate's writer is `tasks.changes.writer.cluster_writer()`.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import Cluster, ClusterReader
from tasks.adapters.http_endpoints import HttpEndpoints
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.adapters.workers import CeleryWorkers, Workers
from tasks.settings import CeleryBroker, KubeAccess, Settings

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}
_http: list[HttpEndpoints] = []
_workers: dict[str, CeleryWorkers] = {}


def pooled_cluster(access: KubeAccess | None = None) -> Cluster:
    """The connected cluster for `access` (default: the settings' REMEDIATE_KUBE__*), one per
    process. Only `tasks.changes.writer` hands it out as is; everything else gets `cluster()`."""
    access = access or Settings().kube
    key = access.model_dump_json()
    with _lock:
        if key not in _clusters:
            _clusters[key] = KubernetesCluster(access)
        return _clusters[key]


def cluster(access: KubeAccess | None = None) -> ClusterReader:
    """The cluster for `access`, as the read-only view: only the gate changes anything
    (`tasks.changes.writer`)."""
    return pooled_cluster(access)


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
    with _lock:
        for connected in _clusters.values():
            connected.close()
        _clusters.clear()
        for adapter in _workers.values():
            adapter.close()
        _workers.clear()
        for client in _http:
            client.close()
        _http.clear()
