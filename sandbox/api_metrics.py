"""metrics.k8s.io: what metrics-server would report, computed from Running pods in the store and
the usage the runtime holds for their containers. `kubectl top pods` and the runbook's
CustomObjectsApi calls read this; sorting is client-side.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from aiohttp import web

from sandbox.api_wire import ApiError, json_response
from sandbox.cluster import SandboxCluster
from sandbox.discovery import METRICS_GROUP, METRICS_VERSIONS
from sandbox.resources import NODE, POD
from sandbox.selectors import SelectorError
from sandbox.store import Obj, now_rfc3339

WINDOW = "15s"

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def parse_quantity(text: str) -> Decimal:
    m = _QUANTITY.match(text.strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"not a quantity: {text!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2)]


def _pod_metrics(cluster: SandboxCluster, pod: Obj, api_version: str, timestamp: str) -> Obj:
    meta = pod["metadata"]
    containers = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        cpu, memory = cluster.runtime.usage(meta.get("uid", ""), c.get("name", ""))
        containers.append({"name": c.get("name", ""), "usage": {"cpu": cpu, "memory": memory}})
    return {
        "kind": "PodMetrics",
        "apiVersion": api_version,
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "labels": meta.get("labels") or {},
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "timestamp": timestamp,
        "window": WINDOW,
        "containers": containers,
    }


def _running(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _node_metrics(cluster: SandboxCluster, node: Obj, api_version: str, timestamp: str) -> Obj:
    name = node["metadata"]["name"]
    pods, _ = cluster.store.list(
        POD, None, where=lambda p: _running(p) and (p.get("spec") or {}).get("nodeName") == name
    )
    cpu, memory = Decimal(0), Decimal(0)
    for pod in pods:
        for c in (pod.get("spec") or {}).get("containers") or []:
            c_cpu, c_mem = cluster.runtime.usage(pod["metadata"].get("uid", ""), c.get("name", ""))
            cpu += parse_quantity(c_cpu)
            memory += parse_quantity(c_mem)
    return {
        "kind": "NodeMetrics",
        "apiVersion": api_version,
        "metadata": {
            "name": name,
            "labels": node["metadata"].get("labels") or {},
            "creationTimestamp": node["metadata"].get("creationTimestamp"),
        },
        "timestamp": timestamp,
        "window": WINDOW,
        "usage": {"cpu": f"{int(cpu * 10**9)}n", "memory": f"{int(memory) // 1024}Ki"},
    }


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{resource}.{METRICS_GROUP} "{name}" not found',
        "NotFound",
        {"name": name, "group": METRICS_GROUP, "kind": resource},
    )


def serve_metrics(
    request: web.Request, cluster: SandboxCluster, version: str, rest: list[str]
) -> web.Response:
    if version not in METRICS_VERSIONS:
        raise ApiError(404, "the server could not find the requested resource", "NotFound")
    if request.method != "GET":
        raise ApiError(405, "metrics are read-only", "MethodNotAllowed")
    api_version = f"{METRICS_GROUP}/{version}"
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2 or rest[0] not in {"pods", "nodes"}:
        raise ApiError(404, "the server could not find the requested resource", "NotFound")
    resource, name = rest[0], (rest[1] if len(rest) == 2 else None)
    timestamp = now_rfc3339()
    labels = request.query.get("labelSelector")
    items: list[Any]
    try:
        if resource == "pods":
            pods, _ = cluster.store.list(POD, namespace, labels=labels, where=_running)
            if name is not None:
                pods = [p for p in pods if p["metadata"]["name"] == name]
                if not pods:
                    raise _not_found("podmetrics", f"{namespace}/{name}")
            items = [_pod_metrics(cluster, p, api_version, timestamp) for p in pods]
        else:
            if namespace is not None:
                raise ApiError(404, "the server could not find the requested resource")
            nodes, _ = cluster.store.list(NODE, None, labels=labels)
            if name is not None:
                nodes = [n for n in nodes if n["metadata"]["name"] == name]
                if not nodes:
                    raise _not_found("nodemetrics", name)
            items = [_node_metrics(cluster, n, api_version, timestamp) for n in nodes]
    except SelectorError as exc:
        raise ApiError(400, str(exc), "BadRequest") from None
    if name is not None:
        return json_response(items[0])
    items.sort(key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"]))
    list_kind = "PodMetricsList" if resource == "pods" else "NodeMetricsList"
    return json_response(
        {"kind": list_kind, "apiVersion": api_version, "metadata": {}, "items": items}
    )
