"""The one door to a cluster that can change it: the gate's (`tasks.changes.mutations` hands it
over).

Everything else reaches the cluster through `tasks.connection.cluster()`, typed as the read-only
`ClusterReader`; an import-linter contract keeps probes, diagnoses, verifies and flows from
importing this module. Both views share one connection pool per KubeAccess and process.
"""

from __future__ import annotations

from tasks.adapters.cluster import Cluster
from tasks.connection import pooled_cluster
from tasks.settings import KubeAccess


def cluster_writer(access: KubeAccess | None = None) -> Cluster:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), able to change it."""
    return pooled_cluster(access)
