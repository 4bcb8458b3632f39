"""diagnose_health is pure: every rule is a row."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.adapters.cluster import Condition, Deployment, EndpointAddress, Endpoints, Pod
from tasks.diagnoses.health import HealthSnapshot, Severity, diagnose_health


def pod(**overrides: Any) -> Pod:
    fields: dict[str, Any] = {
        "name": "alphaswarm-core-abc",
        "namespace": "alphaswarm",
        "uid": "u1",
        "phase": "Running",
        "status": "Running",
        "ready_containers": 1,
        "total_containers": 1,
        "restarts": 0,
    }
    return Pod(**{**fields, **overrides})


def deployment(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "name": "alphaswarm-core",
        "namespace": "alphaswarm",
        "replicas": 3,
        "available_replicas": 3,
        "ready_replicas": 3,
    }
    return Deployment(**{**fields, **overrides})


def endpoints(ready: int, not_ready: int = 0) -> Endpoints:
    addresses = [EndpointAddress(ip=f"10.0.0.{i}", ready=True) for i in range(ready)]
    addresses += [EndpointAddress(ip=f"10.0.1.{i}", ready=False) for i in range(not_ready)]
    return Endpoints(name="alphaswarm-client", namespace="alphaswarm", addresses=tuple(addresses))


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (HealthSnapshot(pods=(pod(),)), []),
        (
            HealthSnapshot(
                pods=(
                    pod(
                        waiting_reason="CrashLoopBackOff",
                        status="CrashLoopBackOff",
                        ready_containers=0,
                    ),
                )
            ),
            [(Severity.CRITICAL, "pod/alphaswarm/alphaswarm-core-abc", "CrashLoopBackOff")],
        ),
        (
            HealthSnapshot(pods=(pod(phase="Pending", status="Pending", ready_containers=0),)),
            [(Severity.CRITICAL, "pod/alphaswarm/alphaswarm-core-abc", "status Pending")],
        ),
        (
            HealthSnapshot(pods=(pod(ready_containers=0),)),
            [(Severity.WARNING, "pod/alphaswarm/alphaswarm-core-abc", "not ready (0/1)")],
        ),
        (
            HealthSnapshot(pods=(pod(restarts=7),)),
            [(Severity.WARNING, "pod/alphaswarm/alphaswarm-core-abc", "7 restarts")],
        ),
        (
            HealthSnapshot(pods=(pod(phase="Succeeded", status="Completed", ready_containers=0),)),
            [],
        ),
        (HealthSnapshot(pods=(pod(deleting=True, status="Terminating", ready_containers=0),)), []),
        (HealthSnapshot(deployments={"alphaswarm/alphaswarm-core": deployment()}), []),
        (
            HealthSnapshot(deployments={"alphaswarm/alphaswarm-core": None}),
            [(Severity.CRITICAL, "deployment/alphaswarm/alphaswarm-core", "missing")],
        ),
        (
            HealthSnapshot(
                deployments={"alphaswarm/alphaswarm-core": deployment(available_replicas=2)}
            ),
            [(Severity.WARNING, "deployment/alphaswarm/alphaswarm-core", "2/3 replicas available")],
        ),
        (
            HealthSnapshot(
                deployments={"alphaswarm/alphaswarm-core": deployment(available_replicas=0)}
            ),
            [
                (
                    Severity.CRITICAL,
                    "deployment/alphaswarm/alphaswarm-core",
                    "0/3 replicas available",
                )
            ],
        ),
        (
            HealthSnapshot(
                deployments={
                    "alphaswarm/alphaswarm-core": deployment(
                        conditions=(
                            Condition(
                                type="Progressing",
                                status="False",
                                reason="ProgressDeadlineExceeded",
                            ),
                        )
                    )
                }
            ),
            [
                (
                    Severity.CRITICAL,
                    "deployment/alphaswarm/alphaswarm-core",
                    "rollout exceeded its progress deadline",
                )
            ],
        ),
        (HealthSnapshot(endpoints={"alphaswarm/alphaswarm-client": endpoints(2)}), []),
        (
            HealthSnapshot(endpoints={"alphaswarm/alphaswarm-client": endpoints(0, 2)}),
            [
                (
                    Severity.CRITICAL,
                    "endpoints/alphaswarm/alphaswarm-client",
                    "no ready endpoints (2 not ready): ingress answers 503",
                )
            ],
        ),
        (
            HealthSnapshot(endpoints={"alphaswarm/alphaswarm-client": None}),
            [(Severity.CRITICAL, "endpoints/alphaswarm/alphaswarm-client", "missing")],
        ),
    ],
)
def test_diagnose_health(snapshot: HealthSnapshot, expected: list[tuple[str, str, str]]) -> None:
    report = diagnose_health(snapshot)
    assert [(f.severity, f.target, f.problem) for f in report.findings] == expected
    assert report.healthy == (not expected)


def test_critical_findings_come_first() -> None:
    report = diagnose_health(
        HealthSnapshot(
            pods=(pod(name="a", restarts=9), pod(name="b", waiting_reason="CrashLoopBackOff")),
        )
    )
    assert [f.severity for f in report.findings] == [Severity.CRITICAL, Severity.WARNING]
