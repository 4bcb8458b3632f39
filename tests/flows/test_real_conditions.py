"""Issue 8's matrix: every injectable incident under each condition a real cluster has and the
plain sandbox did not (a managed Postgres with no pod, a core image without curl, crash-looping
pods seen Running between crashes), triaged as a sweep the way `remediate demo` does.

For each: the branch is the incident's own (an inconclusive probe never takes over), what could
not be probed is named, and when triage applies the fix it never records the incident resolved
while the sandbox still shows its symptom."""

from __future__ import annotations

import pytest

from flows.triage import TriageOutcome, VerifyPolicy, triage
from sandbox import injections
from sandbox.backlog import REHEARSAL_QUEUE_DEPTH_ALARM
from sandbox.egress import curl_jwks_from_pod
from sandbox.incident_effects import auth_mode
from sandbox.resources import POD
from sandbox.server import SandboxServer
from sandbox.symptoms import showing
from sandbox.volumes import redis_claim
from store.models import IncidentStatus
from tests.flows.sandbox_state import settle

NS = "alphaswarm"
CONDITIONS = ("managed-postgres", "no-curl", "running-between-crashes")
REHEARSAL = VerifyPolicy(attempts=150, delay_seconds=0.1, quiet_seconds=1.0, hold_seconds=0.5)


def _inject(sandbox: SandboxServer, name: str) -> bool:
    """Inject and wait for the symptoms; False when the condition rules the incident out."""
    try:
        injections.inject(sandbox.cluster, name)
    except injections.IncidentError as exc:
        assert name == "postgres-down" and "managed" in str(exc).lower(), exc
        return False
    settle(sandbox, lambda: showing(sandbox.cluster, name), timeout=20)
    return True


def _run(apply: bool) -> TriageOutcome:
    return triage(
        dry_run=not apply,
        approve_permissive=True,
        approve_postgres_delete=True,
        approved_by="test (sandbox rehearsal)",
        verify=REHEARSAL,
    )


def _symptom(sandbox: SandboxServer, name: str) -> bool:
    """The incident's symptom as the sandbox itself knows it (never through the flows' probes):
    C a backlog at or over the rehearsal alarm, D a core pod enforcing auth that cannot fetch
    the JWKS, the others what `showing` reads (crash-looping pods, empty endpoints)."""
    cluster = sandbox.cluster
    branch = injections.resolve(name).branch
    if branch == "C":
        claim = redis_claim(cluster, NS)
        return claim is not None and (
            cluster.volumes.get(NS, claim, "backtests") >= REHEARSAL_QUEUE_DEPTH_ALARM
        )
    if branch == "D":
        core, _ = cluster.store.list(POD, NS, labels="app=alphaswarm-core")
        return any(
            auth_mode(p) == "enforce" and curl_jwks_from_pod(cluster, p).exit_code != 0
            for p in core
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        )
    return showing(cluster, name)


def _still_showing(sandbox: SandboxServer, name: str, ticks: int = 40) -> bool:
    """The symptom at any tick of a while: a crash-looping pod is not in back-off at every
    instant, so one look is not enough to call it gone."""
    for _ in range(ticks):
        sandbox.controllers.step()
        if _symptom(sandbox, name):
            return True
    return False


@pytest.mark.parametrize("conditioned", [(c,) for c in CONDITIONS], indirect=True, ids=CONDITIONS)
@pytest.mark.parametrize("name", injections.names())
def test_each_incident_keeps_its_branch_under_each_condition(
    conditioned: SandboxServer, name: str
) -> None:
    if not _inject(conditioned, name):
        return
    expected = injections.resolve(name).branch
    planned = _run(apply=False)
    assert planned.decision is not None
    assert planned.scenario is not None and planned.scenario.value == expected, planned.reason
    if "managed-postgres" in conditioned.conditions:
        assert any(line.startswith("postgres") for line in planned.decision.inconclusive)


@pytest.mark.parametrize("conditioned", [CONDITIONS], indirect=True, ids=["all-conditions"])
@pytest.mark.parametrize("name", injections.names())
def test_nothing_is_resolved_while_its_symptom_is_there(
    conditioned: SandboxServer, name: str
) -> None:
    if not _inject(conditioned, name):
        return
    applied = _run(apply=True)
    assert applied.scenario is not None
    assert applied.scenario.value == injections.resolve(name).branch, applied.reason
    if applied.incident_status is IncidentStatus.RESOLVED:
        assert not _still_showing(conditioned, name), f"{name} recorded resolved, still showing"
    assert applied.outcome is not None
    assert applied.outcome.status == "mitigated", applied.outcome.message
