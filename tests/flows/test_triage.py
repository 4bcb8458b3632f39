"""Triage end to end: alerts in, the branch decided on probed evidence, the scenario flow run as
a subflow through the real engine, judged by the sandbox's journal and state."""

from __future__ import annotations

from typing import Any

import pytest

from flows.triage import triage
from sandbox import injections
from sandbox.resources import POD
from sandbox.server import SandboxServer
from tasks.changes.models import ChangeStatus
from tasks.models.alerts import parse_alertmanager
from tasks.models.diagnosis import Scenario
from tasks.models.outcome import OutcomeStatus
from tests.flows.sandbox_settings import alert_payload, point_flows_at
from tests.flows.sandbox_state import settle

NS, CORE = "alphaswarm", "alphaswarm-core"


@pytest.fixture(autouse=True)
def _settings(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    point_flows_at(sandbox, monkeypatch)


def crash_looping(sandbox: SandboxServer, app: str = CORE) -> list[str]:
    pods, _ = sandbox.cluster.store.list(POD, NS, labels=f"app={app}")
    return [
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        for s in p.get("status", {}).get("containerStatuses") or []
        if (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    ]


def params(name: str, *, apply: bool) -> dict[str, Any]:
    """Triage's parameters for the alerts fixture `name`: as the intake starts it."""
    return {"alerts": parse_alertmanager(alert_payload(name)), "dry_run": not apply}


def test_single_crash_runs_scenario_a_and_restarts_once(sandbox: SandboxServer) -> None:
    injections.inject(sandbox.cluster, "crashloop-single")
    settle(sandbox, lambda: len(crash_looping(sandbox)) == 1)
    sandbox.cluster.journal.clear()

    result = triage(**params("crashloop-single", apply=True))

    assert result.scenario is Scenario.POD_CRASH and not result.escalate
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.MITIGATED
    assert result.plan == (f"applied: kubectl rollout restart -n {NS} deployment/{CORE}",)
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{CORE}")
    ]
    assert crash_looping(sandbox) == []
    assert result.model_dump(mode="json")["scenario"] == "A"


def test_single_crash_dry_run_plans_and_changes_nothing(sandbox: SandboxServer) -> None:
    injections.inject(sandbox.cluster, "crashloop-single")
    settle(sandbox, lambda: len(crash_looping(sandbox)) == 1)
    crashing = crash_looping(sandbox)
    sandbox.cluster.journal.clear()

    result = triage(**params("crashloop-single", apply=False))

    assert result.scenario is Scenario.POD_CRASH and result.dry_run
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.PLANNED
    (change,) = result.outcome.changes
    assert change.status is ChangeStatus.PLANNED
    assert sandbox.cluster.journal.mutations() == []
    # The same pod still crash-loops (between two crashes it shows Running for a moment).
    settle(sandbox, lambda: crash_looping(sandbox) == crashing)


def test_jwks_alerts_pick_scenario_d(sandbox: SandboxServer) -> None:
    injections.inject(sandbox.cluster, "jwks-503")
    sandbox.controllers.step()
    sandbox.cluster.journal.clear()

    result = triage(**params("jwks-503", apply=False))

    assert result.scenario is Scenario.JWKS_OUTAGE
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.PLANNED
    assert result.plan == (
        f"planned: kubectl set env -n {NS} deploy/{CORE} ALPHASWARM_AUTH_ENFORCE=permissive",
    )
    assert sandbox.cluster.journal.mutations() == []


def test_redis_down_is_platform_first_and_never_restarts_workers(sandbox: SandboxServer) -> None:
    injections.inject(sandbox.cluster, "redis-down")
    settle(sandbox, lambda: len(crash_looping(sandbox, "alphaswarm-worker")) >= 1)
    sandbox.cluster.journal.clear()

    result = triage(**params("redis-down-worker-crashes", apply=True))

    assert result.scenario is Scenario.STATEFUL_FAILOVER
    assert "redis-master-0" in result.reason.lower() or "redis" in result.reason.lower()
    assert not any("alphaswarm-worker" in r.path for r in sandbox.cluster.journal.mutations())
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.MITIGATED
    assert [r.path for r in sandbox.cluster.journal.mutations()] == [
        f"/api/v1/namespaces/{NS}/pods/redis-master-0"
    ]


def test_unclear_evidence_escalates_with_the_evidence(sandbox: SandboxServer) -> None:
    result = triage(**params("unclear", apply=True))
    assert result.scenario is None and result.escalate and result.outcome is None
    assert "escalating instead of guessing" in result.reason
    assert any("AlphaSwarmHighLatency" in e for e in result.decision.evidence)
    assert any(": healthy: " in e for e in result.decision.evidence)
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []


def test_a_sweep_of_a_healthy_cluster_has_nothing_to_do(sandbox: SandboxServer) -> None:
    result = triage()
    assert result.scenario is None and not result.escalate and result.plan == ()
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []
