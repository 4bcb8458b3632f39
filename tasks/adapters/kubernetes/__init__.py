"""`KubernetesCluster`: the `Cluster` protocol over the official `kubernetes` client, one module
per API group (core, apps, autoscaling, networking and policy). These modules are the only code
that imports `kubernetes`. Each method makes the REST calls kubectl makes for the runbook's
command (see reference/kubernetes-wire.md), turns the answer into a frozen model from
`tasks.adapters.cluster` at once, and sorts failures into `TransientError` / `PermanentError`.
"""

from __future__ import annotations

from tasks.adapters.kubernetes.apps import AppsCalls
from tasks.adapters.kubernetes.autoscaling import AutoscalingCalls
from tasks.adapters.kubernetes.client import classify, current_kubeconfig, rfc3339
from tasks.adapters.kubernetes.networking import NetworkingCalls

__all__ = ["KubernetesCluster", "classify", "current_kubeconfig", "rfc3339"]


class KubernetesCluster(AppsCalls, AutoscalingCalls, NetworkingCalls):
    """The runbook's cluster calls through one isolated ApiClient. Close it (or use `with`)."""

    def __enter__(self) -> KubernetesCluster:
        return self
