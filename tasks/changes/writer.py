"""The one door to a cluster (and a control plane) that can change it: the gate's
(`tasks.changes.mutations` hands it over).

Everything else reaches the cluster through `tasks.connection.cluster()`, a `ReadOnlyCluster`
that has the reads only, and JWKS through `tasks.connection.http_endpoints()`, without the
control plane's scale. Import-linter contracts (pyproject.toml) let only
`tasks.changes.mutations` import this module, and only this module and `tasks.connection` import
the pool the writer lives in (`tasks.adapters.pool`); both views share its connections.
"""

from __future__ import annotations

from tasks.adapters.cluster import Cluster
from tasks.adapters.http_endpoints import HttpEndpoints
from tasks.adapters.pool import pooled_cluster, pooled_endpoints
from tasks.connection import settings
from tasks.settings import KubeAccess


def cluster_writer(access: KubeAccess | None = None) -> Cluster:
    """The cluster for `access` (default: the settings' REMEDIATE_KUBE__*), able to change it."""
    return pooled_cluster(access or settings().kube)


def control_plane_writer() -> HttpEndpoints:
    """The process's HTTP client, with the control plane's scale (runbook C's audited path)."""
    return pooled_endpoints(settings().kube.request_timeout_seconds)
