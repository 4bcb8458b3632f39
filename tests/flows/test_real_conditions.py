"""Issue 8's matrix: every injectable incident under each condition a real cluster has and the
plain sandbox did not (a managed Postgres with no pod, a core image without curl, crash-looping
pods seen Running between crashes), triaged as a sweep the way `remediate demo` does.

For each: the branch is the incident's own (an inconclusive probe never takes over), what could
not be probed is named, and when triage applies the fix it never records the incident resolved
while the sandbox still shows its symptom."""

from __future__ import annotations

import pytest

from flows.triage import TriageOutcome, TriageParams, VerifyPolicy, triage
from sandbox import incidents
from sandbox.server import SandboxServer
from sandbox.symptoms import showing
from store.models import IncidentStatus
from tests.flows.sandbox_state import settle

CONDITIONS = ("managed-postgres", "no-curl", "running-between-crashes")
REHEARSAL = VerifyPolicy(attempts=150, delay_seconds=0.1, quiet_seconds=1.0, hold_seconds=0.5)


def _inject(sandbox: SandboxServer, name: str) -> bool:
    """Inject and wait for the symptoms; False when the condition rules the incident out."""
    try:
        incidents.inject(sandbox.cluster, name)
    except incidents.IncidentError as exc:
        assert name == "postgres-down" and "managed" in str(exc).lower(), exc
        return False
    settle(sandbox, lambda: showing(sandbox.cluster, name), timeout=20)
    return True


def _run(apply: bool) -> TriageOutcome:
    return triage(
        TriageParams(
            dry_run=not apply,
            approve_permissive=True,
            approved_by="test (sandbox rehearsal)",
            verify=REHEARSAL,
        )
    )


def _still_showing(sandbox: SandboxServer, name: str, ticks: int = 40) -> bool:
    """The symptom at any tick of a while: a crash-looping pod is not in back-off at every
    instant, so one look is not enough to call it gone."""
    for _ in range(ticks):
        sandbox.controllers.step()
        if showing(sandbox.cluster, name):
            return True
    return False


@pytest.mark.parametrize("conditioned", [(c,) for c in CONDITIONS], indirect=True, ids=CONDITIONS)
@pytest.mark.parametrize("name", incidents.names())
def test_each_incident_keeps_its_branch_under_each_condition(
    conditioned: SandboxServer, name: str
) -> None:
    if not _inject(conditioned, name):
        return
    expected = incidents.resolve(name).branch
    planned = _run(apply=False)
    assert planned.decision is not None
    assert planned.scenario is not None and planned.scenario.value == expected, planned.reason
    if "managed-postgres" in conditioned.conditions:
        assert any(line.startswith("postgres") for line in planned.decision.inconclusive)


@pytest.mark.parametrize("conditioned", [CONDITIONS], indirect=True, ids=["all-conditions"])
@pytest.mark.parametrize("name", incidents.names())
def test_nothing_is_resolved_while_its_symptom_is_there(
    conditioned: SandboxServer, name: str
) -> None:
    if not _inject(conditioned, name):
        return
    applied = _run(apply=True)
    assert applied.scenario is not None
    assert applied.scenario.value == incidents.resolve(name).branch, applied.reason
    if applied.incident_status is IncidentStatus.RESOLVED:
        assert not _still_showing(conditioned, name), f"{name} recorded resolved, still showing"
    assert applied.outcome is not None
    assert applied.outcome.status == "mitigated", applied.outcome.message
