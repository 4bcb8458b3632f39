"""Graceful pod deletion, as the API server and the kubelet share it on a real cluster.

A delete (from a client, a ReplicaSet scaling down, a StatefulSet shrinking) does not remove a pod
that runs on a node: the API server sets metadata.deletionTimestamp (now + the grace period) and
deletionGracePeriodSeconds (the request's gracePeriodSeconds, else the pod's
spec.terminationGracePeriodSeconds, else 30), and the pod stays listed, `kubectl get pods` STATUS
Terminating, while its kubelet stops the containers (Killing event); then it is gone. A pod never
bound to a node, or already finished, has no kubelet to wait for and goes at once, as does
`--grace-period=0 --force`.

While it terminates a pod is not active (a ReplicaSet creates its replacement at once), not
ready and never a ready endpoint; a StatefulSet recreates the same name only once it is gone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sandbox.shapes import rfc3339
from sandbox.store import Obj

DEFAULT_GRACE_SECONDS = 30


def grace_seconds(pod: Mapping[str, Any], requested: int | None = None) -> int:
    if requested is not None:
        return max(requested, 0)
    spec_grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_SECONDS if spec_grace is None else int(spec_grace)


def deleted_at_once(pod: Mapping[str, Any], grace: int) -> bool:
    """No kubelet to wait for: forced, never scheduled, or its containers already finished."""
    phase = (pod.get("status") or {}).get("phase")
    return (
        grace == 0
        or not (pod.get("spec") or {}).get("nodeName")
        or phase
        in (
            "Succeeded",
            "Failed",
        )
    )


def mark_terminating(pod: Obj, grace: int, now: float) -> None:
    """What the API server writes on a graceful delete; a second delete may only shorten it."""
    meta = pod["metadata"]
    current = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp") and current is not None and current <= grace:
        return
    meta["deletionTimestamp"] = rfc3339(now + grace)
    meta["deletionGracePeriodSeconds"] = grace


def termination_ticks(grace: int) -> int:
    """Controller ticks a terminating pod stays listed: a tick per 10 s of grace, at least two
    (so a client sees Terminating) and at most three (the sandbox's programs exit on SIGTERM well
    within any grace period, as well-behaved containers do)."""
    return min(max(2, math.ceil(grace / 10)), 3)
