"""The one door to a cluster that can change it: the gate's (`tasks.changes.mutations` hands it
over).

Everything else reaches the cluster through `tasks.connection.cluster()`, a `ReadOnlyCluster`
that has the reads only. Import-linter contracts (pyproject.toml) let only
`tasks.changes.mutations` import this module, and only this module and `tasks.connection` import
the pool the writer lives in (`tasks.adapters.pool`); both views share its connections.
"""

from __future__ import annotations

from tasks.adapters.cluster import Cluster
from tasks.adapters.pool import pooled_cluster
from tasks.settings import KubeAccess, Settings


def cluster_writer(access: KubeAccess | None = None) -> Cluster:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), able to change it."""
    return pooled_cluster(access or Settings().kube)
