"""The connected clusters: one `KubernetesCluster` per KubeAccess and process.

This module holds the objects that can change the cluster. Two modules import it, and an
import-linter contract (pyproject.toml) lets no other: `tasks.connection`, which hands out only
the read-only `ReadOnlyCluster` over a pooled cluster, and `tasks.changes.writer`, the gate's
door, which hands it out as is. Both share the one connection pool.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import Cluster
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.settings import KubeAccess

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}


def pooled_cluster(access: KubeAccess) -> Cluster:
    """The connected cluster for `access`, made on first use and kept for the process."""
    key = access.model_dump_json()
    with _lock:
        if key not in _clusters:
            _clusters[key] = KubernetesCluster(access)
        return _clusters[key]


def close_pooled() -> None:
    """Close every pooled cluster's connections (the next use connects again)."""
    with _lock:
        for connected in _clusters.values():
            connected.close()
        _clusters.clear()
