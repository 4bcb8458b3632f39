"""kubectl's READY / STATUS / RESTARTS columns, computed from a Pod in its JSON (wire) form.

The server builds these columns for kubectl (a meta.k8s.io Table); the Python client gets plain
Pods, so the runbook's `kubectl get pods | findstr CrashLoop` needs the printer's rules here.
This follows `printPod` in kubernetes/pkg/printers/internalversion/printers.go (v1.32):
pod reason or phase, then init containers, then app containers in reverse, then Terminating.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

NODE_LOST = "NodeLost"
SCHEDULING_GATED = "SchedulingGated"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

JSON = Mapping[str, Any]


@dataclass(frozen=True)
class PodColumns:
    status: str
    ready_containers: int
    total_containers: int
    restarts: int
    last_restart_at: datetime | None


def parse_time(value: object) -> datetime | None:
    """RFC 3339 as the API writes it ("...Z") or as the client re-serialises it ("+00:00")."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b > a else a


def _restartable_init(spec_init: Sequence[JSON], name: str) -> bool:
    """A sidecar: an init container with restartPolicy Always."""
    return any(c.get("name") == name and c.get("restartPolicy") == "Always" for c in spec_init)


def _terminated_text(terminated: JSON, prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def pod_columns(pod: JSON) -> PodColumns:
    """READY, STATUS and RESTARTS for one pod, the way `kubectl get pods` prints them."""
    metadata: JSON = pod.get("metadata") or {}
    spec: JSON = pod.get("spec") or {}
    status: JSON = pod.get("status") or {}
    spec_init: Sequence[JSON] = spec.get("initContainers") or []
    conditions: Sequence[JSON] = status.get("conditions") or []

    phase = status.get("phase") or ""
    reason: str = status.get("reason") or phase
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == SCHEDULING_GATED:
            reason = SCHEDULING_GATED

    total = len(spec.get("containers") or []) + sum(
        1 for c in spec_init if c.get("restartPolicy") == "Always"
    )
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    sidecar_last_restart: datetime | None = None

    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        name = container.get("name", "")
        sidecar = _restartable_init(spec_init, name)
        count = int(container.get("restartCount") or 0)
        restarts += count
        last_terminated = (container.get("lastState") or {}).get("terminated")
        finished = parse_time(last_terminated.get("finishedAt")) if last_terminated else None
        last_restart = _later(last_restart, finished)
        if sidecar:
            sidecar_restarts += count
            sidecar_last_restart = _later(sidecar_last_restart, finished)
        state: JSON = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode", 0)) == 0:
            continue
        if sidecar and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            reason = _terminated_text(terminated, "Init:")
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{index}/{len(spec_init)}"
        initializing = True
        break

    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions
    )
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = sidecar_last_restart
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            last_terminated = (container.get("lastState") or {}).get("terminated")
            if last_terminated:
                last_restart = _later(last_restart, parse_time(last_terminated.get("finishedAt")))
            state = container.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated is not None:
                reason = _terminated_text(terminated)
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
            reason = "Running" if pod_ready else "NotReady"

    if metadata.get("deletionTimestamp"):
        if status.get("reason") == NODE_LOST:
            reason = "Unknown"
        elif phase not in TERMINAL_PHASES:
            reason = "Terminating"

    return PodColumns(
        status=reason,
        ready_containers=ready,
        total_containers=total,
        restarts=restarts,
        last_restart_at=last_restart,
    )
