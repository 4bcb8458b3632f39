from __future__ import annotations

import pytest

from flows.health_sweep import health_sweep
from sandbox.journal import Fault
from sandbox.resources import POD
from sandbox.server import SandboxServer


def test_seeded_sandbox_is_healthy_and_nothing_changes(sandbox: SandboxServer) -> None:
    report = health_sweep()
    assert report.healthy, report.findings
    assert report.pods_seen >= 10 and report.pods_ready == report.pods_seen
    assert sandbox.cluster.journal.mutations() == []


def test_empty_client_endpoints_are_found(sandbox: SandboxServer) -> None:
    sandbox.cluster.behaviour.set_workload("alphaswarm", "alphaswarm-client", ready=False)
    sandbox.controllers.step()
    report = health_sweep()
    targets = {f.target: f for f in report.findings}
    endpoints = targets["endpoints/alphaswarm/alphaswarm-client"]
    assert endpoints.severity == "critical" and "no ready endpoints" in endpoints.problem
    pods, _ = sandbox.cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-client")
    assert {f"pod/alphaswarm/{p['metadata']['name']}" for p in pods} <= set(targets)


def test_transient_errors_are_retried(sandbox: SandboxServer) -> None:
    sandbox.cluster.faults.add(
        Fault(path=r"/namespaces/alphaswarm/pods$", error_rate=1.0, status=503, times=2)
    )
    report = health_sweep()
    assert report.healthy
    attempts = sandbox.cluster.journal.requests("GET", r"/namespaces/alphaswarm/pods$")
    assert [r.status for r in attempts] == [503, 503, 200]


def test_permanent_errors_are_not_retried(sandbox: SandboxServer) -> None:
    from tasks.adapters.errors import PermanentError

    sandbox.cluster.faults.add(
        Fault(path=r"/namespaces/alphaswarm/pods$", error_rate=1.0, status=403)
    )
    with pytest.raises(PermanentError):
        health_sweep()
    attempts = sandbox.cluster.journal.requests("GET", r"/namespaces/alphaswarm/pods$")
    assert [r.status for r in attempts] == [403]
