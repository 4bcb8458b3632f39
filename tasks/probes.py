"""Read-only probes: what the runbook's "common diagnostic commands" look at."""

from __future__ import annotations

from tasks.adapters.cluster import Deployment, Endpoints, Pod, PodUsage
from tasks.connection import cluster
from tasks.retries import probe_task


@probe_task("probe-pods")
def probe_pods(namespace: str, selector: str | None = None) -> tuple[Pod, ...]:
    """`kubectl get pods -n NAMESPACE -o wide [-l SELECTOR]`."""
    return cluster().pods(namespace, selector)


@probe_task("probe-deployment")
def probe_deployment(namespace: str, name: str) -> Deployment | None:
    """`kubectl get deployment NAME`: None when it does not exist."""
    return cluster().deployment(namespace, name)


@probe_task("probe-endpoints")
def probe_endpoints(namespace: str, service: str) -> Endpoints | None:
    """`kubectl get endpoints -n NAMESPACE SERVICE`."""
    return cluster().endpoints(namespace, service)


@probe_task("probe-top-pods")
def probe_top_pods(namespace: str) -> tuple[PodUsage, ...]:
    """`kubectl top pods -n NAMESPACE --sort-by=cpu`."""
    return cluster().top_pods(namespace, sort_by="cpu")
