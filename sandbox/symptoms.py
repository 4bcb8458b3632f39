"""Whether an injected incident's symptoms have appeared yet, read from the sandbox's store.

An incident flips knobs; its symptoms (a CrashLoopBackOff, a flapping HPA, empty Endpoints)
appear as the controllers tick. A rehearsal waits for them before it triages, as an operator
waits for the alert, so triage sees the incident and not a cluster half-way into it.

Each check is of one instant: a crash-looping pod counts while it is in back-off or has just died
(Error, OOMKilled), not while it runs between two crashes, so "still showing" after a fix has to
be asked over a number of ticks (a crash cycle is at most ten, 23 when running between crashes).
A crash counts once it repeats (restartCount 1 or more, when a real kubelet first shows
CrashLoopBackOff): an operator is alerted to a crash loop, not to one exit. The HPA thrash's pods
are the exception: the flapping HPA deletes them on its next scale-down, so they are seen on
their first crash or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.cluster import SandboxCluster
from sandbox.injections import resolve
from sandbox.resources import ENDPOINTS, EVENT, POD
from sandbox.shapes import is_crashing

NS, INGRESS_NS, ADMIN_NS = "alphaswarm", "ingress-nginx", "alphaswarm-admin"


def crash_looping(
    cluster: SandboxCluster, namespace: str, selector: str, *, repeated: bool = True
) -> int:
    """Pods crashing at this instant (in CrashLoopBackOff, or just dead with an error), and, when
    `repeated`, not for the first time."""
    pods, _ = cluster.store.list(POD, namespace, labels=selector)
    return sum(1 for p in pods if is_crashing(p) and (not repeated or _restarts(p) >= 1))


def _restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(cs.get("restartCount") or 0) for cs in statuses), default=0)


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
    "B": lambda c: (
        _core_rescales(c) >= 6 and crash_looping(c, NS, "app=alphaswarm-core", repeated=False) >= 2
    ),
    # C's backlog and D's failing JWKS exist as soon as the incident is injected.
    "C": lambda c: True,
    "D": lambda c: True,
    "F": lambda c: (
        crash_looping(c, NS, "app=postgres") >= 1 or crash_looping(c, NS, "app=redis") >= 1
    ),
}


def showing(cluster: SandboxCluster, incident: str) -> bool:
    """True once the incident (by name, as `injections.inject` takes it) is visible."""
    found = resolve(incident)
    if found.name == "ingress-503":
        return _ready_endpoints(cluster, NS, "alphaswarm-client") == 0
    if found.name == "ingress-503:ingress-controller-down":
        return crash_looping(cluster, INGRESS_NS, "app.kubernetes.io/name=ingress-nginx") >= 1
    if found.name == "crashloop-several":
        return crash_looping(cluster, NS, "app=alphaswarm-core") >= 2
    if found.name == "cp-crashloop":
        return crash_looping(cluster, ADMIN_NS, "app=alphaswarm-cp") >= 1
    if found.name == "redis-down":
        return (
            crash_looping(cluster, NS, "app=redis") >= 1
            and crash_looping(cluster, NS, "app=alphaswarm-worker") >= 1
        )
    return SHOWING[found.branch](cluster)
