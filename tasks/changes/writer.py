"""The one door to a cluster that can change it: the gate's (`tasks.changes.mutations` hands it
over).

Everything else reaches the cluster through `tasks.connection.cluster()`, typed as the read-only
`ClusterReader`; an import-linter contract keeps probes, diagnoses, verifies and flows from
importing this module. One connection pool per KubeAccess and process serves both views.
"""

from __future__ import annotations

import threading

from tasks.adapters.cluster import Cluster
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.settings import KubeAccess, Settings

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}


def cluster_writer(access: KubeAccess | None = None) -> Cluster:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), connected once."""
    access = access or Settings().kube
    key = access.model_dump_json()
    with _lock:
        if key not in _clusters:
            _clusters[key] = KubernetesCluster(access)
        return _clusters[key]


def close_clusters() -> None:
    with _lock:
        for connected in _clusters.values():
            connected.close()
        _clusters.clear()
