"""Pod creation as the scheduler finishes it: the pod is bound to the least busy node and the
`Scheduled` event is written, so every controller-made pod tells the same story in
`kubectl describe pod`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.events import record_event
from sandbox.resources import NODE, POD
from sandbox.shapes import pending_pod, rfc3339
from sandbox.store import Obj


def node_ip(node: Mapping[str, Any]) -> str:
    for address in node.get("status", {}).get("addresses", []):
        if address["type"] == "InternalIP":
            return str(address["address"])
    return ""


def _least_busy_node(cluster: SandboxCluster) -> Mapping[str, Any] | None:
    nodes, _ = cluster.store.list(NODE)
    if not nodes:
        return None
    pods, _ = cluster.store.list(POD)
    load = {n["metadata"]["name"]: 0 for n in nodes}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node in load:
            load[node] += 1
    return min(nodes, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))


def schedule_pod(
    cluster: SandboxCluster,
    template: Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    extra_labels: Mapping[str, str],
    now: float,
    volumes: Iterable[Obj] = (),
    hostname: tuple[str, str] | None = None,
) -> Obj:
    """Create the pod bound to a node; with no nodes at all it stays Pending, unschedulable."""
    node = _least_busy_node(cluster)
    pod = cluster.store.create(
        POD,
        pending_pod(
            template,
            name=name,
            namespace=namespace,
            owner=owner,
            node=node["metadata"]["name"] if node else None,
            host_ip=node_ip(node) if node else "",
            extra_labels=extra_labels,
            volumes=volumes,
            hostname=hostname,
            created=rfc3339(now),
        ),
    )
    if node is None:
        record_event(
            cluster.store,
            pod,
            "FailedScheduling",
            "0/0 nodes are available: no nodes available to schedule pods.",
            now=now,
            component="default-scheduler",
            type_="Warning",
        )
    else:
        record_event(
            cluster.store,
            pod,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {node['metadata']['name']}",
            now=now,
            component="default-scheduler",
        )
    return pod
