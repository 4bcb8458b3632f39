"""Which cluster the tasks talk to: one client per process and per access setting.

Tasks take plain names, not clients, so Prefect can render and record their parameters; they
reach the cluster through `cluster()`, which reuses one connection pool per KubeAccess.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import Cluster
from tasks.adapters.http_endpoints import HttpEndpoints
from tasks.adapters.kubernetes_cluster import KubernetesCluster
from tasks.settings import KubeAccess, Settings

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}
_http: list[HttpEndpoints] = []


def cluster(access: KubeAccess | None = None) -> Cluster:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), connected once."""
    access = access or Settings().kube
    key = access.model_dump_json()
    with _lock:
        if key not in _clusters:
            _clusters[key] = KubernetesCluster(access)
        return _clusters[key]


def http_endpoints() -> HttpEndpoints:
    """The JWKS and control-plane client, one per process."""
    with _lock:
        if not _http:
            _http.append(HttpEndpoints(timeout=Settings().kube.request_timeout_seconds))
        return _http[0]


def close_all() -> None:
    with _lock:
        for connected in _clusters.values():
            connected.close()
        _clusters.clear()
        for client in _http:
            client.close()
        _http.clear()
