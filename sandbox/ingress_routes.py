"""Where ingress-nginx sends a request: the stored Ingresses' rules, each rule's backend Service,
and whether that Service has a ready endpoint to send it to.

Two exporters answer from this: the ingress controller's request counter (`sandbox.ingress_traffic`)
and the blackbox probe of the client's public URL (`sandbox.blackbox_probe`). Both must say 503
exactly while the Endpoints controller (`sandbox.endpoints`) lists no ready address for the
backend (runbook E: the wedged alphaswarm-client pods fail readiness and leave their Endpoints
empty), and nothing at all while no controller pod serves (the controller crash-loops), as a
real ingress-nginx answers and fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.resources import ENDPOINTS, INGRESS, POD

CONTROLLER_NAMESPACE = "ingress-nginx"
CONTROLLER_SELECTOR = "app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller"
# The controller's --controller-class default, which its metrics carry as controller_class.
CONTROLLER_CLASS = "k8s.io/ingress-nginx"
INGRESS_CLASS = "nginx"


@dataclass(frozen=True, order=True)
class Route:
    """One path of one Ingress rule and the Service it sends to."""

    namespace: str
    ingress: str
    host: str
    path: str
    service: str


def routes(cluster: SandboxCluster) -> list[Route]:
    """Every path of every Ingress of the nginx class, sorted."""
    found = []
    ingresses, _ = cluster.store.list(INGRESS)
    for ing in ingresses:
        meta, spec = ing["metadata"], ing.get("spec") or {}
        if spec.get("ingressClassName", INGRESS_CLASS) != INGRESS_CLASS:
            continue
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                service = ((path.get("backend") or {}).get("service") or {}).get("name")
                if service:
                    found.append(
                        Route(
                            meta["namespace"],
                            meta["name"],
                            str(rule.get("host", "")),
                            str(path.get("path", "/")),
                            str(service),
                        )
                    )
    return sorted(found)


def _prefix_matches(prefix: str, path: str) -> bool:
    """pathType Prefix: whole path elements, so /api matches /api and /api/x, not /apix."""
    base = prefix.rstrip("/")
    return not base or path == base or path.startswith(base + "/")


def route_for(cluster: SandboxCluster, host: str, path: str) -> Route | None:
    """The route a request for host and path takes: the longest matching prefix of its host."""
    matching = [r for r in routes(cluster) if r.host == host and _prefix_matches(r.path, path)]
    return max(matching, key=lambda r: len(r.path.rstrip("/")), default=None)


def backend_ready(cluster: SandboxCluster, route: Route) -> bool:
    """The route's Service lists at least one ready address in its Endpoints."""
    endpoints = cluster.store.get(ENDPOINTS, route.namespace, route.service)
    subsets: list[Mapping[str, Any]] = (endpoints or {}).get("subsets") or []
    return any(s.get("addresses") for s in subsets)


def controller_pod(cluster: SandboxCluster) -> str | None:
    """The name of the ingress-nginx controller pod that serves, if one does."""
    pods, _ = cluster.store.list(POD, CONTROLLER_NAMESPACE, labels=CONTROLLER_SELECTOR)
    serving = sorted(p["metadata"]["name"] for p in pods if cluster.behaviour.serving(p))
    return serving[0] if serving else None
