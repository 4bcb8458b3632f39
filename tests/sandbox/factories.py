"""Objects that satisfy the v37 client's strict models (wire reference §5.2)."""

from __future__ import annotations

from typing import Any

from sandbox.store import Obj

NS = "shop"


def make_pod(
    name: str,
    *,
    namespace: str = NS,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    restarts: int = 0,
    containers: tuple[str, ...] = ("app",),
    waiting: str | None = None,
    node: str = "node-1",
) -> Obj:
    statuses: list[dict[str, Any]] = []
    for c in containers:
        state: dict[str, Any] = (
            {"waiting": {"reason": waiting}}
            if waiting
            else {"running": {"startedAt": "2026-01-10T10:00:00Z"}}
        )
        cs: dict[str, Any] = {
            "name": c,
            "image": f"ghcr.io/acme/{c}:1.0",
            "imageID": f"ghcr.io/acme/{c}@sha256:abc",
            "ready": waiting is None,
            "restartCount": restarts,
            "state": state,
        }
        if restarts:
            cs["lastState"] = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": "2026-01-10T10:00:00Z",
                    "finishedAt": "2026-01-10T10:05:00Z",
                }
            }
        statuses.append(cs)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "api"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": c,
                    "image": f"ghcr.io/acme/{c}:1.0",
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                }
                for c in containers
            ],
        },
        "status": {
            "phase": phase,
            "podIP": "10.0.0.11",
            "startTime": "2026-01-10T10:00:00Z",
            "conditions": [{"type": "Ready", "status": "True" if waiting is None else "False"}],
            "containerStatuses": statuses,
        },
    }


def make_deployment(name: str = "api", *, namespace: str = NS, replicas: int = 3) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "ghcr.io/acme/api:1.4.2",
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {"name": "FEATURE_X", "value": "on"},
                            ],
                        },
                        {"name": "sidecar", "image": "envoy:1.30"},
                    ]
                },
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas},
    }
