"""Issue 4's last "done when": runbook D's scheduled revert really runs. Triage flips auth to
permissive (a hard-rule bypass): a P1 follow-up is recorded and a `revert-auth-enforce` run is
scheduled in Prefect. Auth0 recovers; the deployment is served exactly as
`python -m deployments.serve` serves it, Prefect's runner picks the scheduled run up when its
time comes and executes it in a process of its own, and that run waits for JWKS to stay healthy,
restores ALPHASWARM_AUTH_ENFORCE on the sandbox, closes the P1 and resolves the incident."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.runner import Runner

from deployments.serve import runner_deployments
from flows.revert_auth_enforce import DEPLOYMENT_NAME
from sandbox import injections
from sandbox.server import SandboxServer
from store.models import FollowUpStatus, IncidentStatus
from tests.flows.sandbox_settings import point_flows_at
from tests.flows.test_incident_records import the_only_incident
from tests.flows.test_triage_e2e import (
    CASES,
    CORE_PATH,
    auth_enforce,
    core_pods_auth,
    inject,
    run_triage,
)


@pytest.fixture(autouse=True)
def store(any_store: str) -> str:
    """On SQLite and on PostgreSQL: the revert's own process writes the same store."""
    return any_store


def serve_revert_once(run_id: str) -> None:
    """One poll of a runner serving the revert deployment (as deployments/serve.py does); it
    returns once the runs it picked up have finished. The harness server is shared by the
    session's tests, whose D runs scheduled reverts of their own (15 minutes on, so due in a
    long session): those are deleted first, or the runner could pick one of them instead."""
    with get_client(sync_client=True) as client:
        others = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT_NAME])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )
        for other in others:
            if str(other.id) != run_id:
                client.delete_flow_run(other.id)
    (deployment,) = [d for d in runner_deployments() if d.name == DEPLOYMENT_NAME]
    runner = Runner(name="test-serve-revert", query_seconds=1, prefetch_seconds=30, limit=1)

    async def serve() -> None:
        await runner.aadd_deployment(deployment)
        await runner.start(run_once=True)

    asyncio.run(serve())


def test_the_scheduled_revert_restores_enforcement_and_closes_the_p1(
    sandbox: SandboxServer, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(sandbox, monkeypatch)
    monkeypatch.setenv("REMEDIATE_AUTH__REVERT_CHECK_AFTER_SECONDS", "2")
    monkeypatch.setenv("REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS", "1")
    case = CASES["jwks-503:auth0-down"]
    inject(sandbox, case)
    flipped = run_triage(case.alerts, apply=True, approve_permissive=True)
    assert auth_enforce(sandbox) == "permissive"
    assert flipped.incident_status is IncidentStatus.VERIFIED
    (p1,) = [f for f in the_only_incident(store).follow_ups if f.priority == "P1"]
    assert p1.status is FollowUpStatus.SCHEDULED and p1.scheduled_flow_run_id is not None

    injections.heal(sandbox.cluster)  # Auth0 is back
    sandbox.cluster.journal.clear()
    serve_revert_once(p1.scheduled_flow_run_id)

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(p1.scheduled_flow_run_id))
    assert run.state is not None and run.state.is_completed(), run.state
    # The sandbox: enforcement restored by exactly one write, and the pods rolled with it.
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("PATCH", CORE_PATH)
    ]
    assert auth_enforce(sandbox) == "enforce"
    assert core_pods_auth(sandbox) == {"enforce"}
    # The store: the P1 closed by that run, the incident resolved, the revert's audit row
    # linked to the incident it belongs to.
    record = the_only_incident(store)
    (closed,) = [f for f in record.follow_ups if f.priority == "P1"]
    assert closed.status is FollowUpStatus.DONE and closed.closed_at is not None
    assert "revert-auth-enforce: alphaswarm/alphaswarm-core" in closed.closed_by
    assert record.incident.status is IncidentStatus.RESOLVED
    assert "reverted" in record.incident.resolution
    revert = [a for a in record.actions if a.flow_run_id == p1.scheduled_flow_run_id]
    assert [a.after for a in revert] == [{"app": "enforce"}]
    # The report was brought up to date by the revert: the P1 is ticked off.
    assert record.incident.report_path is not None
    with open(record.incident.report_path, encoding="utf-8") as report:
        text = report.read()
    assert "- [x] **P1**" in text and "**resolved**" in text


def test_while_jwks_still_fails_the_revert_keeps_permissive_and_comes_back(
    sandbox: SandboxServer, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth0 is still down when the revert runs: nothing is restored, a new run is scheduled,
    and the P1 in the store follows it (still scheduled, pointing at the new run)."""
    from flows.revert_auth_enforce import revert_auth_enforce
    from store.models import EventKind

    point_flows_at(sandbox, monkeypatch)
    case = CASES["jwks-503:auth0-down"]
    inject(sandbox, case)
    run_triage(case.alerts, apply=True, approve_permissive=True)
    (p1,) = [f for f in the_only_incident(store).follow_ups if f.priority == "P1"]
    with get_client(sync_client=True) as client:
        first = client.read_flow_run(UUID(p1.scheduled_flow_run_id or ""))
    sandbox.cluster.journal.clear()

    outcome = revert_auth_enforce(**first.parameters)

    assert outcome.status == "escalated" and sandbox.cluster.journal.mutations() == []
    assert auth_enforce(sandbox) == "permissive"
    (again,) = outcome.follow_ups
    assert again.scheduled_flow_run_id not in (None, p1.scheduled_flow_run_id)
    record = the_only_incident(store)
    (p1_now,) = [f for f in record.follow_ups if f.priority == "P1"]
    assert p1_now.status is FollowUpStatus.SCHEDULED
    assert p1_now.scheduled_flow_run_id == again.scheduled_flow_run_id
    assert any(e.kind is EventKind.FOLLOW_UP and "rescheduled" in e.summary for e in record.events)
    assert record.incident.status is IncidentStatus.VERIFIED  # still owed, not resolved
