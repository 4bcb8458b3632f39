"""The Endpoints and EndpointSlice controllers: every Service with a selector lists the pods
behind it, ready ones as `addresses` (slice condition ready) and the rest as
`notReadyAddresses`. Empty endpoints are the runbook's "pods aren't passing readinessProbe"
signal for an ingress 503, so they must follow pod readiness tick by tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.resources import ENDPOINT_SLICE, ENDPOINTS, POD, SERVICE
from sandbox.selectors import match_labels_to_selector
from sandbox.shapes import is_ready, is_terminating, owner_ref, template_hash
from sandbox.store import Obj


def _target_port(port: Mapping[str, Any], pod: Mapping[str, Any]) -> int:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    for c in pod["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return int(port["port"])


def _ref(pod: Mapping[str, Any]) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}


def slice_name(service: str) -> str:
    return f"{service}-{template_hash({'service': service})[:5]}"


def endpoints_for(service: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> tuple[Obj, Obj]:
    """The Endpoints and the EndpointSlice a Service's pods call for."""
    meta, spec = service["metadata"], service["spec"]
    ns, name = meta["namespace"], meta["name"]
    backing = sorted(
        (p for p in pods if p.get("status", {}).get("podIP")), key=lambda p: p["status"]["podIP"]
    )
    ports = spec.get("ports") or []

    def wire_ports(pod: Mapping[str, Any] | None) -> list[Obj]:
        return [
            {
                **({"name": p["name"]} if p.get("name") else {}),
                "port": _target_port(p, pod) if pod else int(p.get("targetPort", p["port"])),
                "protocol": p.get("protocol", "TCP"),
            }
            for p in ports
        ]

    ready = [p for p in backing if is_ready(p) and not is_terminating(p)]
    not_ready = [p for p in backing if not is_ready(p) and not is_terminating(p)]

    def address(pod: Mapping[str, Any]) -> Obj:
        return {
            "ip": pod["status"]["podIP"],
            "nodeName": pod["spec"].get("nodeName", ""),
            "targetRef": _ref(pod),
        }

    subset: Obj = {"ports": wire_ports(backing[0] if backing else None)}
    if ready:
        subset["addresses"] = [address(p) for p in ready]
    if not_ready:
        subset["notReadyAddresses"] = [address(p) for p in not_ready]
    endpoints: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": dict(meta.get("labels") or {})},
        "subsets": [subset] if ready or not_ready else [],
    }
    endpoint_slice: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(name),
            "namespace": ns,
            "generateName": f"{name}-",
            "labels": {
                **(meta.get("labels") or {}),
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [owner_ref(service)],
        },
        "addressType": "IPv4",
        "ports": wire_ports(backing[0] if backing else None),
        "endpoints": [
            {
                "addresses": [p["status"]["podIP"]],
                "conditions": {
                    "ready": is_ready(p) and not is_terminating(p),
                    "serving": is_ready(p),
                    "terminating": is_terminating(p),
                },
                "nodeName": p["spec"].get("nodeName", ""),
                "targetRef": _ref(p),
            }
            for p in backing
        ],
    }
    return endpoints, endpoint_slice


class EndpointsController:
    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster

    def step(self) -> None:
        services, _ = self.cluster.store.list(SERVICE)
        for service in services:
            selector = service["spec"].get("selector")
            if selector:
                self._sync(service, selector)

    def _sync(self, service: Mapping[str, Any], selector: Mapping[str, str]) -> None:
        store = self.cluster.store
        ns = service["metadata"]["namespace"]
        pods, _ = store.list(POD, ns, labels=match_labels_to_selector(selector))
        endpoints, endpoint_slice = endpoints_for(service, pods)
        for kind, want, fields in (
            (ENDPOINTS, endpoints, ("subsets",)),
            (ENDPOINT_SLICE, endpoint_slice, ("ports", "endpoints")),
        ):
            name = want["metadata"]["name"]
            if store.get(kind, ns, name) is None:
                store.create(kind, want)
                continue

            def write(obj: Obj, want: Obj = want, fields: tuple[str, ...] = fields) -> None:
                for field in fields:
                    obj[field] = want[field]

            store.update(kind, ns, name, write)
