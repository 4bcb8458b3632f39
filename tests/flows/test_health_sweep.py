"""The health sweep through the real Prefect engine against the sandbox: what it finds, what it
costs in API calls (from the sandbox's journal), and the incidents it hands to the intake."""

from __future__ import annotations

import pytest

from flows.health_sweep import health_sweep, render_report
from sandbox.journal import Fault
from sandbox.resources import DEPLOYMENT, POD
from sandbox.server import SandboxServer
from tasks.adapters.errors import PermanentError
from tasks.models.alerts import AlertTarget, alert_target
from tests.flows.sandbox_state import pods, ready_count, settle

NS, ADMIN, INGRESS = "alphaswarm", "alphaswarm-admin", "ingress-nginx"
CORE, CLIENT = "alphaswarm-core", "alphaswarm-client"
# `kubectl get pods,deployments,endpoints -n NS` for each namespace of the configured scope
LISTS = (
    "/api/v1/namespaces/{}/pods",
    "/apis/apps/v1/namespaces/{}/deployments",
    "/api/v1/namespaces/{}/endpoints",
)
SWEEP_CALLS = sorted(f"GET {path.format(ns)}" for ns in (NS, ADMIN, INGRESS) for path in LISTS)


def calls(sandbox: SandboxServer) -> list[str]:
    return sorted(f"{r.method} {r.path}" for r in sandbox.cluster.journal.requests())


def crash_loop_one_core_pod(sandbox: SandboxServer) -> str:
    victim = pods(sandbox, NS, f"app={CORE}")[0]
    sandbox.cluster.behaviour.set_pod(victim["metadata"]["uid"], crash_looping=True)

    def waiting_crashed() -> bool:
        found = sandbox.cluster.store.get(POD, NS, victim["metadata"]["name"]) or {}
        return any(
            (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for s in found.get("status", {}).get("containerStatuses") or []
        )

    settle(sandbox, waiting_crashed)
    return str(victim["metadata"]["name"])


def test_seeded_sandbox_is_healthy_and_nothing_changes(sandbox: SandboxServer) -> None:
    sandbox.cluster.journal.clear()
    report = health_sweep()
    assert report.healthy, report.findings
    assert report.pods_seen >= 10 and report.pods_ready == report.pods_seen
    assert report.namespaces == (NS, ADMIN, INGRESS)
    assert report.alerts == () and report.handoff is None
    assert calls(sandbox) == SWEEP_CALLS
    assert sandbox.cluster.journal.mutations() == []


def test_api_calls_do_not_grow_with_pods(sandbox: SandboxServer) -> None:
    """Nine LIST calls at 12 pods and at 52 (each list fits one page of 500): the journal's
    requests are the same, call for call."""
    sandbox.cluster.journal.clear()
    small = health_sweep(open_incidents=False)
    at_small = calls(sandbox)

    scaled = sandbox.cluster.store.mutable(DEPLOYMENT, NS, CLIENT)
    scaled["spec"]["replicas"] = 42
    sandbox.cluster.store.replace(DEPLOYMENT, scaled)
    settle(sandbox, lambda: ready_count(sandbox, NS, f"app={CLIENT}") == 42, timeout=60)
    sandbox.cluster.journal.clear()
    large = health_sweep(open_incidents=False)
    at_large = calls(sandbox)

    assert large.pods_seen == small.pods_seen + 40
    assert at_small == at_large == SWEEP_CALLS
    assert len(at_large) == 9


def test_empty_client_endpoints_are_found(sandbox: SandboxServer) -> None:
    sandbox.cluster.behaviour.set_workload(NS, CLIENT, ready=False)
    sandbox.controllers.step()
    report = health_sweep(open_incidents=False)
    targets = {f.target: f for f in report.findings}
    endpoints = targets[f"endpoints/{NS}/{CLIENT}"]
    assert endpoints.severity == "critical" and "no ready endpoints" in endpoints.problem
    assert "ingress answers 503" in endpoints.problem
    client_pods = pods(sandbox, NS, f"app={CLIENT}")
    assert {f"pod/{NS}/{p['metadata']['name']}" for p in client_pods} <= set(targets)
    assert [(a.name, alert_target(a)) for a in report.alerts] == [
        ("HealthSweepNoReadyEndpoints", AlertTarget(namespace=NS, service=CLIENT))
    ]
    assert report.handoff is None  # open_incidents is off: reported, not handed over
    assert "`open_incidents` is off" in render_report(report)


def test_a_crash_loop_opens_one_incident_and_a_repeat_joins_it(sandbox: SandboxServer) -> None:
    from tasks.triggers.outbox import pending

    victim = crash_loop_one_core_pod(sandbox)
    sandbox.cluster.journal.clear()
    first = health_sweep()

    assert f"pod/{NS}/{victim}" in {f.target for f in first.findings}
    [alert] = first.alerts
    assert alert.name == "HealthSweepCrashLooping" and alert.labels["source"] == "health-sweep"
    assert alert_target(alert) == AlertTarget(namespace=NS, deployment=CORE)
    assert first.handoff is not None
    assert first.handoff.accepted == 1 and len(first.handoff.incidents_opened) == 1
    # No triage deployment is served in the test harness: the run waits in the outbox.
    assert first.handoff.runs_created == 0 and first.handoff.runs_waiting == 1
    assert pending() == 1
    (incident,) = first.handoff.incidents_opened
    assert f"incidents opened: #{incident}" in render_report(first)
    assert calls(sandbox) == SWEEP_CALLS  # the handoff costs the cluster nothing

    second = health_sweep()
    assert second.handoff is not None
    assert [a.fingerprint for a in second.alerts] == [alert.fingerprint]
    assert second.handoff.incidents_opened == () and second.handoff.incidents_joined == (incident,)
    assert pending() == 1  # no second triage run owed


def test_a_failing_intake_never_fails_the_sweep(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def store_down(*_: object, **__: object) -> None:
        raise RuntimeError("incident store unreachable")

    monkeypatch.setattr("flows.health_sweep.receive", store_down)
    crash_loop_one_core_pod(sandbox)
    report = health_sweep()
    assert not report.healthy and report.alerts
    assert report.handoff is not None and report.handoff.error is not None
    assert "incident store unreachable" in report.handoff.error
    assert report.handoff.incidents_opened == ()
    assert "**Not handed to the intake**" in render_report(report)


def test_transient_errors_are_retried(sandbox: SandboxServer) -> None:
    sandbox.cluster.faults.add(
        Fault(path=r"/namespaces/alphaswarm/pods$", error_rate=1.0, status=503, times=2)
    )
    report = health_sweep()
    assert report.healthy
    attempts = sandbox.cluster.journal.requests("GET", r"/namespaces/alphaswarm/pods$")
    assert [r.status for r in attempts] == [503, 503, 200]


def test_permanent_errors_are_not_retried(sandbox: SandboxServer) -> None:
    sandbox.cluster.faults.add(
        Fault(path=r"/namespaces/alphaswarm/pods$", error_rate=1.0, status=403)
    )
    with pytest.raises(PermanentError):
        health_sweep()
    attempts = sandbox.cluster.journal.requests("GET", r"/namespaces/alphaswarm/pods$")
    assert [r.status for r in attempts] == [403]


def test_the_lists_say_what_the_per_object_reads_say(sandbox: SandboxServer) -> None:
    """The sweep's LISTs (one per kind and namespace) return the same facts as a GET of each
    object, which the runbook's flows read."""
    from tasks.connection import cluster

    c = cluster()
    for ns in (NS, ADMIN, INGRESS):
        deployments = {d.name: d for d in c.deployments(ns)}
        endpoints = {e.name: e for e in c.all_endpoints(ns)}
        assert deployments and endpoints
        assert all(c.deployment(ns, name) == d for name, d in deployments.items())
        assert all(c.endpoints(ns, name) == e for name, e in endpoints.items())
    assert {d.name for d in c.deployments(NS)} == {
        CORE,
        "alphaswarm-worker",
        CLIENT,
    }
