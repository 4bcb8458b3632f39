"""The connected clients that can change something: one `KubernetesCluster` per KubeAccess and
process, and the process's `HttpEndpoints` (JWKS, and the control plane's scale).

Two modules import this one, and an import-linter contract (pyproject.toml) lets no other:
`tasks.connection`, which hands out only read-only views of them (`ReadOnlyCluster`,
`JwksEndpoint`), and `tasks.changes.writer`, the gate's door, which hands them out as they are.
The views and the writer share the one connection pool.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import Cluster
from tasks.adapters.http_endpoints import HttpEndpoints
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.settings import KubeAccess

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}
_http: list[HttpEndpoints] = []


def pooled_cluster(access: KubeAccess) -> Cluster:
    """The connected cluster for `access`, made on first use and kept for the process."""
    key = access.model_dump_json()
    with _lock:
        if key not in _clusters:
            _clusters[key] = KubernetesCluster(access)
        return _clusters[key]


def pooled_endpoints(timeout: float) -> HttpEndpoints:
    """The JWKS and control-plane client, made on first use and kept for the process."""
    with _lock:
        if not _http:
            _http.append(HttpEndpoints(timeout=timeout))
        return _http[0]


def close_pooled() -> None:
    """Close every pooled client's connections (the next use connects again)."""
    with _lock:
        for connected in _clusters.values():
            connected.close()
        _clusters.clear()
        for client in _http:
            client.close()
        _http.clear()
