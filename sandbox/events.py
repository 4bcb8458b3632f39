"""core/v1 Events as the client-go recorder writes them, including its aggregation: an event
with the same involved object, reason, type, source and message bumps `count` and
`lastTimestamp` on the existing Event instead of adding one. HPA thrash is read from exactly that
shape (two SuccessfulRescale events with alternating sizes and growing counts).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from sandbox.resources import EVENT
from sandbox.shapes import object_ref, rfc3339
from sandbox.store import Obj, Store

# Keeps names unique when one tick writes several events about one object.
_sequence = itertools.count()


def record_event(
    store: Store,
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    now: float,
    component: str,
    host: str | None = None,
    type_: str = "Normal",
    field_path: str | None = None,
) -> Obj:
    """Write or aggregate one Event about `involved` (which must carry its uid)."""
    meta = involved["metadata"]
    namespace = meta.get("namespace") or "default"
    uid = meta["uid"]
    stamp = rfc3339(now)

    def same(ev: Obj) -> bool:
        return (
            ev["involvedObject"].get("uid") == uid
            and ev.get("reason") == reason
            and ev.get("message") == message
            and ev.get("type") == type_
            and ev.get("source", {}).get("component") == component
        )

    existing, _ = store.list(EVENT, namespace, where=same)
    if existing:

        def bump(ev: Obj) -> None:
            ev["count"] = ev.get("count", 1) + 1
            ev["lastTimestamp"] = stamp

        return store.update(EVENT, namespace, existing[0]["metadata"]["name"], bump)

    source: Obj = {"component": component}
    if host:
        source["host"] = host
    return store.create(
        EVENT,
        {
            "metadata": {
                "name": f"{meta['name']}.{int(now * 1e9) + next(_sequence):x}",
                "namespace": namespace,
                "creationTimestamp": stamp,
            },
            "involvedObject": object_ref(involved, field_path),
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": source,
            "reportingComponent": component,
            "reportingInstance": host or "",
        },
    )


def container_event(
    store: Store,
    pod: Mapping[str, Any],
    container: str,
    reason: str,
    message: str,
    *,
    now: float,
    type_: str = "Normal",
) -> Obj:
    """An Event the kubelet reports about one container of `pod` (its node, its field path)."""
    return record_event(
        store,
        pod,
        reason,
        message,
        now=now,
        component="kubelet",
        host=pod["spec"].get("nodeName"),
        type_=type_,
        field_path=f"spec.containers{{{container}}}",
    )
