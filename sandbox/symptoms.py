"""Whether an injected incident's symptoms have appeared yet, read from the sandbox's store.

An incident flips knobs; its symptoms (a CrashLoopBackOff, a flapping HPA, empty Endpoints)
appear as the controllers tick. A rehearsal waits for them before it triages, as an operator
waits for the alert, so triage sees the incident and not a cluster half-way into it.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.cluster import SandboxCluster
from sandbox.incidents import resolve
from sandbox.resources import ENDPOINTS, EVENT, POD
from sandbox.shapes import is_active

NS, INGRESS_NS = "alphaswarm", "ingress-nginx"


def crash_looping(cluster: SandboxCluster, namespace: str, selector: str) -> int:
    pods, _ = cluster.store.list(POD, namespace, labels=selector)
    return sum(
        1
        for p in pods
        if is_active(p)
        for s in p.get("status", {}).get("containerStatuses") or []
        if (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    )


def _ready_endpoints(cluster: SandboxCluster, namespace: str, service: str) -> int:
    found = cluster.store.get(ENDPOINTS, namespace, service)
    if found is None:
        return 0
    return sum(len(s.get("addresses") or []) for s in found.get("subsets") or [])


def _core_rescales(cluster: SandboxCluster) -> int:
    events, _ = cluster.store.list(EVENT, NS)
    return sum(
        int(e.get("count") or 1)
        for e in events
        if e.get("reason") == "SuccessfulRescale"
        and e["involvedObject"]["name"] == "alphaswarm-core"
    )


SHOWING: dict[str, Callable[[SandboxCluster], bool]] = {
    "A": lambda c: crash_looping(c, NS, "app=alphaswarm-core") >= 1,
    "B": lambda c: _core_rescales(c) >= 6 and crash_looping(c, NS, "app=alphaswarm-core") >= 2,
    # C's backlog and D's failing JWKS exist as soon as the incident is injected.
    "C": lambda c: True,
    "D": lambda c: True,
    "F": lambda c: (
        crash_looping(c, NS, "app=postgres") >= 1 or crash_looping(c, NS, "app=redis") >= 1
    ),
}


def showing(cluster: SandboxCluster, incident: str) -> bool:
    """True once the incident (by name, as `incidents.inject` takes it) is visible."""
    found = resolve(incident)
    if found.name == "ingress-503":
        return _ready_endpoints(cluster, NS, "alphaswarm-client") == 0
    if found.name == "ingress-503:ingress-controller-down":
        return crash_looping(cluster, INGRESS_NS, "app.kubernetes.io/name=ingress-nginx") >= 1
    if found.name == "redis-down":
        return (
            crash_looping(cluster, NS, "app=redis") >= 1
            and crash_looping(cluster, NS, "app=alphaswarm-worker") >= 1
        )
    return SHOWING[found.branch](cluster)
