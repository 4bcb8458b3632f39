"""Adapter facts for table tests: healthy by default, one override per row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.adapters.cluster import (
    Deployment,
    HorizontalPodAutoscaler,
    HpaBehavior,
    HpaScalingRules,
    ObjectRef,
    Pod,
    PodDisruptionBudget,
    Rescale,
    Termination,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def pod(name: str = "alphaswarm-core-abc", **overrides: Any) -> Pod:
    fields: dict[str, Any] = {
        "name": name,
        "namespace": "alphaswarm",
        "uid": f"uid-{name}",
        "phase": "Running",
        "status": "Running",
        "ready_containers": 1,
        "total_containers": 1,
        "restarts": 0,
    }
    return Pod(**{**fields, **overrides})


def crashing_pod(name: str = "alphaswarm-core-abc", **overrides: Any) -> Pod:
    return pod(
        name,
        status="CrashLoopBackOff",
        waiting_reason="CrashLoopBackOff",
        ready_containers=0,
        restarts=6,
        last_termination=Termination(exit_code=1, reason="Error"),
        **overrides,
    )


def deployment(name: str = "alphaswarm-core", **overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "name": name,
        "namespace": "alphaswarm",
        "replicas": 3,
        "available_replicas": 3,
        "ready_replicas": 3,
    }
    return Deployment(**{**fields, **overrides})


def pdb(**overrides: Any) -> PodDisruptionBudget:
    fields: dict[str, Any] = {
        "name": "alphaswarm-core",
        "namespace": "alphaswarm",
        "min_available": "2",
        "disruptions_allowed": 1,
        "current_healthy": 3,
        "desired_healthy": 2,
        "expected_pods": 3,
    }
    return PodDisruptionBudget(**{**fields, **overrides})


def rescale(size: int, count: int = 1, minutes_ago: float = 1) -> Rescale:
    at = NOW - timedelta(minutes=minutes_ago)
    return Rescale(
        new_size=size,
        reason="cpu resource utilization above target",
        count=count,
        first_timestamp=at,
        last_timestamp=at,
        message=f"New size: {size}; reason: cpu resource utilization above target",
    )


def hpa(window: int | None = 0, rescales: tuple[Rescale, ...] = ()) -> HorizontalPodAutoscaler:
    behavior = (
        HpaBehavior(scale_up=HpaScalingRules(stabilization_window_seconds=window))
        if window is not None
        else None
    )
    return HorizontalPodAutoscaler(
        name="alphaswarm-core",
        namespace="alphaswarm",
        target=ObjectRef(kind="Deployment", name="alphaswarm-core"),
        min_replicas=3,
        max_replicas=10,
        desired_replicas=3,
        behavior=behavior,
        rescales=rescales,
    )
