"""Issue 4's "done when", on SQLite and on a real PostgreSQL server: each runbook scenario injected
into the sandbox, triaged and fixed through the real Prefect engine, leaves exactly one incident
row with the right timeline, the one action (state before and after, its flow run), the
follow-ups, and a report an operator can read; duplicate and grouped alerts for one target make
one incident."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from sqlmodel import func, select

from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import (
    ActionStatus,
    EventKind,
    FollowUpStatus,
    Incident,
    IncidentAlert,
    IncidentStatus,
)
from store.queries import IncidentRecord, load_incident
from tasks.models.alerts import parse_alertmanager
from tests.flows.sandbox_settings import alert_payload, point_flows_at
from tests.flows.test_queue_backlog import REHEARSAL as QUEUE_REHEARSAL
from tests.flows.test_queue_backlog import broker, celery_sandbox, inject_backlog
from tests.flows.test_triage_e2e import CASES, inject, run_triage

__all__ = ["broker", "celery_sandbox"]  # fixtures, for scenario C

S = IncidentStatus
SETTLED = [S.OPEN, S.TRIAGED, S.MITIGATING, S.VERIFIED, S.RESOLVED]


@pytest.fixture(autouse=True)
def store(any_store: str) -> str:
    """This module runs on every backend (it overrides the flows' SQLite-only fixture)."""
    return any_store


@pytest.fixture
def cluster(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The sandbox, with the flows' JWKS and control-plane settings pointed at it."""
    point_flows_at(sandbox, monkeypatch)
    return sandbox


@dataclass(frozen=True)
class Expect:
    scenario: str
    incident: str  # the sandbox incident, a key of test_triage_e2e.CASES
    action: str  # the one change's kind
    target_key: str  # its target
    flow_run: str  # the scenario subflow's run name, which made the change
    statuses: tuple[IncidentStatus, ...] = tuple(SETTLED)


NS = "alphaswarm"
EXPECTED = {
    "A": Expect(
        "A",
        "crashloop-single",
        "rollout-restart",
        f"Deployment/{NS}/alphaswarm-core",
        f"pod-crash: {NS}/alphaswarm-core",
    ),
    "B": Expect(
        "B",
        "hpa-thrash",
        "patch-hpa-scale-up-window",
        f"HorizontalPodAutoscaler/{NS}/alphaswarm-core",
        f"hpa-thrash: {NS}/alphaswarm-core",
    ),
    # D: the flip is verified, the incident waits for its P1 revert to resolve it.
    "D": Expect(
        "D",
        "jwks-503:auth0-down",
        "set-env",
        f"Deployment/{NS}/alphaswarm-core",
        f"jwks-outage: {NS}/alphaswarm-core",
        statuses=(S.OPEN, S.TRIAGED, S.MITIGATING, S.VERIFIED),
    ),
    "E": Expect(
        "E",
        "ingress-503",
        "rollout-restart",
        f"Deployment/{NS}/alphaswarm-client",
        "ingress-503: ingress-nginx/ingress-nginx-controller",
    ),
    "F": Expect(
        "F",
        "redis-down",
        "delete-pods",
        f"Pod/{NS}/redis-master-0",
        f"stateful-failover: {NS}",
    ),
}


def the_only_incident(url: str) -> IncidentRecord:
    with session_for(url) as session:
        ids = session.exec(select(Incident.id)).all()
        assert len(ids) == 1, f"expected exactly one incident row, found {len(ids)}"
        return load_incident(session, incident_id=ids[0] or 0)


def flow_run_name(flow_run_id: str | None) -> str:
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).name


def transitions(record: IncidentRecord) -> list[IncidentStatus | None]:
    return [e.status for e in record.events if e.kind is EventKind.TRANSITION]


def assert_recorded(record: IncidentRecord, expect: Expect, alerts: dict[str, Any]) -> None:
    incident = record.incident
    # The timeline: every transition, in order, each timestamped no earlier than the last.
    assert tuple(transitions(record)) == expect.statuses, transitions(record)
    times = [e.at for e in record.events]
    assert times == sorted(times)
    assert incident.status is expect.statuses[-1]
    assert incident.opened_at <= (incident.triaged_at or incident.opened_at)
    assert incident.verified_at is not None and incident.automated
    assert incident.scenario == expect.scenario
    # The alerts that fired, by fingerprint; the decision that triaged it.
    assert {a.fingerprint for a in record.alerts} == {a["fingerprint"] for a in alerts["alerts"]}
    assert [d.scenario for d in record.decisions] == [incident.scenario]
    # The one applied change: before and after, made by the scenario's own flow run.
    (applied,) = [a for a in record.actions if not a.dry_run]
    assert applied.status is ActionStatus.APPLIED
    assert (applied.action, applied.target_key) == (expect.action, expect.target_key)
    assert applied.before and applied.after and applied.finished_at is not None
    assert flow_run_name(applied.flow_run_id) == expect.flow_run
    assert applied.flow_run_name == expect.flow_run
    # Follow-ups: the regression test the runbook asks for, naming the scenario and the signal.
    regression = [f for f in record.follow_ups if f.kind == "regression-test"]
    (test,) = regression
    assert f"scenario {incident.scenario}" in test.title
    assert all(a["labels"]["alertname"] in test.title for a in alerts["alerts"])


def assert_report(record: IncidentRecord, report: str | None, reports_dir: Path) -> str:
    """The file the runbook names, with every section it asks for and links to the runs."""
    assert report is not None
    path = Path(report)
    assert path.parent == reports_dir
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+\.md", path.name), path.name
    assert record.incident.report_path == report
    text = path.read_text()
    for section in ("## Timeline", "## Blast radius", "## Root cause", "## Fixes applied"):
        assert section in text, section
    assert "## Follow-ups" in text and "add a regression test" in text
    (applied,) = [a for a in record.actions if not a.dry_run]
    assert applied.summary in text
    assert f"/runs/flow-run/{applied.flow_run_id}" in text  # linked to its Prefect run
    assert record.incident.root_cause in text
    for alert in record.alerts:
        assert alert.alertname in text
    return text


def published_report(incident_id: int) -> str:
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
    keys = {a.key: a for a in artifact}
    found = keys.get(f"incident-{incident_id}-report")
    assert found is not None, sorted(k for k in keys if k)
    return str(found.data)


@pytest.mark.parametrize("scenario", ["A", "B", "D", "E", "F"])
def test_each_scenario_leaves_one_incident_with_its_timeline_action_follow_ups_and_report(
    cluster: SandboxServer, store: str, tmp_path: Path, scenario: str
) -> None:
    sandbox = cluster
    expect = EXPECTED[scenario]
    case = CASES[expect.incident]
    inject(sandbox, case)

    result = run_triage(case.alerts, apply=True, **case.approvals)

    assert result.incident_id is not None and result.incident_status is expect.statuses[-1]
    record = the_only_incident(store)
    assert record.id == result.incident_id
    assert_recorded(record, expect, alert_payload(case.alerts))
    text = assert_report(record, result.report, tmp_path / "incidents")
    assert published_report(record.id) == text
    if scenario == "D":
        (p1,) = [f for f in record.follow_ups if f.priority == "P1"]
        assert p1.kind == "revert" and p1.status is FollowUpStatus.SCHEDULED
        assert p1.scheduled_flow_run_id is not None
        assert p1.scheduled_flow_run_id == result.outcome.follow_ups[0].scheduled_flow_run_id  # type: ignore[union-attr]
        (plan,) = [a for a in record.actions if a.dry_run]  # D shows its plan before approval
        assert plan.status is ActionStatus.PLANNED
        assert "The incident is still **verified**." in text
    else:
        assert record.incident.resolved_at is not None
        assert "held" in record.incident.resolution
        assert [a.dry_run for a in record.actions] == [False]


def test_queue_backlog_leaves_one_incident(
    celery_sandbox: SandboxServer, broker: Any, store: str, tmp_path: Path
) -> None:
    """Scenario C, with real Celery workers on a real broker."""
    inject_backlog(celery_sandbox, broker)
    from flows.triage import triage

    result = triage(
        alerts=parse_alertmanager(alert_payload("queue-backlog")),
        dry_run=False,
        verify=QUEUE_REHEARSAL,
    )

    record = the_only_incident(store)
    expect = Expect(
        "C",
        "queue-backlog",
        "control-plane-scale",
        f"Deployment/{NS}/alphaswarm-worker",
        f"queue-backlog: {NS}/alphaswarm-worker",
    )
    assert_recorded(record, expect, alert_payload("queue-backlog"))
    assert_report(record, result.report, tmp_path / "incidents")


# -- one target, one incident --------------------------------------------------------------------


def count(url: str, table: type[Any]) -> int:
    with session_for(url) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_a_resent_alert_joins_its_incident_and_the_fix_runs_once(
    cluster: SandboxServer, store: str
) -> None:
    """Alertmanager resends the group while it is being handled: planned, resent, applied."""
    sandbox = cluster
    case = CASES["crashloop-single"]
    inject(sandbox, case)

    planned = run_triage(case.alerts, apply=False)
    resent = run_triage(case.alerts, apply=False)
    applied = run_triage(case.alerts, apply=True)

    assert planned.incident_id == resent.incident_id == applied.incident_id
    assert count(store, Incident) == 1 and count(store, IncidentAlert) == 1
    record = the_only_incident(store)
    (alert,) = record.alerts
    # three firing deliveries, then Alertmanager's resolved notification once the fix held
    assert alert.received_count == 4 and alert.status == "resolved"
    assert [a.dry_run for a in record.actions] == [True, True, False]
    assert transitions(record) == [S.OPEN, S.TRIAGED, S.TRIAGED, S.TRIAGED, *SETTLED[2:]]
    assert len([f for f in record.follow_ups if f.kind == "regression-test"]) == 1
    assert len(sandbox.cluster.journal.mutations()) == 1


def test_grouped_alerts_and_a_second_alert_for_the_same_target_make_one_incident(
    cluster: SandboxServer, store: str
) -> None:
    """One payload grouping two alerts about core, then another alert about core from a
    different rule (another group, another fingerprint): triage decides the same target, so the
    second run's provisional incident is merged into the first."""
    sandbox = cluster
    case = CASES["crashloop-single"]
    inject(sandbox, case)
    grouped = alert_payload("crashloop-single")
    second = dict(grouped["alerts"][0])
    second["fingerprint"] = "b2e1d4c3f5a6b7c8"
    second["labels"] = {**second["labels"], "alertname": "KubePodNotReady"}
    grouped["alerts"] = [grouped["alerts"][0], second]
    other_rule = alert_payload("crashloop-single")
    other_rule["groupKey"] = '{}:{alertname="KubeDeploymentReplicasMismatch"}'
    other_rule["alerts"][0] = {
        **other_rule["alerts"][0],
        "fingerprint": "c3f2e5d4a6b7c8d9",
        "labels": {
            "alertname": "KubeDeploymentReplicasMismatch",
            "namespace": NS,
            "deployment": "alphaswarm-core",
        },
    }
    from flows.triage import triage

    first = triage(alerts=parse_alertmanager(grouped), dry_run=True)
    joined = triage(alerts=parse_alertmanager(other_rule), dry_run=True)

    assert first.incident_id == joined.incident_id
    assert count(store, Incident) == 1
    record = the_only_incident(store)
    assert {a.alertname for a in record.alerts} == {
        "KubePodCrashLooping",
        "KubePodNotReady",
        "KubeDeploymentReplicasMismatch",
    }
    assert any(e.kind is EventKind.MERGED for e in record.events)
    assert record.incident.target_key == "A:alphaswarm/alphaswarm-core"


def test_resolved_alerts_resolve_their_incident_without_acting(
    cluster: SandboxServer, store: str
) -> None:
    sandbox = cluster
    case = CASES["crashloop-single"]
    inject(sandbox, case)
    opened = run_triage(case.alerts, apply=False)
    resolved = alert_payload(case.alerts)
    resolved["status"] = "resolved"
    for a in resolved["alerts"]:
        a["status"] = "resolved"
        a["endsAt"] = "2026-11-28T10:30:00Z"
    from flows.triage import triage

    sandbox.cluster.journal.clear()
    result = triage(alerts=parse_alertmanager(resolved), dry_run=False)

    assert result.incident_id == opened.incident_id and result.outcome is None
    assert result.incident_status is S.RESOLVED
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []
    record = the_only_incident(store)
    assert record.incident.resolution == "every alert of the incident resolved (Alertmanager)"
    assert result.report is not None and Path(result.report).is_file()


def test_a_scenario_flow_that_fails_leaves_its_incident_escalated(
    cluster: SandboxServer, store: str
) -> None:
    """The API refuses the restart for good (403): the run fails, and the record says why first."""
    from sandbox.journal import Fault

    sandbox = cluster
    case = CASES["crashloop-single"]
    inject(sandbox, case)
    sandbox.cluster.faults.add(
        Fault(
            path="/deployments/alphaswarm-core$",
            methods=frozenset({"PATCH"}),
            error_rate=1.0,
            status=403,
        )
    )

    with pytest.raises(Exception, match="403"):
        run_triage(case.alerts, apply=True)

    record = the_only_incident(store)
    assert record.incident.status is S.ESCALATED
    assert transitions(record) == [S.OPEN, S.TRIAGED, S.MITIGATING, S.ESCALATED]
    assert "the scenario flow failed" in record.events[-1].summary
    (attempt,) = record.actions
    assert attempt.status is ActionStatus.FAILED and "403" in attempt.error


def test_a_duplicate_alert_never_starts_a_second_fix_while_a_live_run_mitigates(
    cluster: SandboxServer, store: str
) -> None:
    """Another run (here a real Prefect flow run left RUNNING) is mitigating the incident: the
    resent alert joins it and changes nothing. Once that run has crashed, the alert is worked."""
    from prefect.states import Crashed, Running

    from flows.triage import triage as triage_flow
    from store import incidents as store_incidents

    sandbox = cluster
    case = CASES["crashloop-single"]
    inject(sandbox, case)
    planned = run_triage(case.alerts, apply=False)
    assert planned.incident_id is not None
    with get_client(sync_client=True) as client:
        other = client.create_flow_run(triage_flow, name="triage", state=Running())
    with session_for(store) as session:
        store_incidents.transition(
            session,
            incident_id=planned.incident_id,
            to=S.MITIGATING,
            summary="another run applies the fix",
            flow_run_id=str(other.id),
        )
    sandbox.cluster.journal.clear()

    duplicate = run_triage(case.alerts, apply=True)

    assert duplicate.incident_id == planned.incident_id and duplicate.outcome is None
    assert f"already being mitigated by flow run {other.id}" in duplicate.reason
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(other.id, Crashed(), force=True)
    worked = run_triage(case.alerts, apply=True)

    assert worked.incident_id == planned.incident_id
    assert worked.outcome is not None and worked.outcome.status == "mitigated"
    assert len(sandbox.cluster.journal.mutations()) == 1
    assert the_only_incident(store).incident.status is S.RESOLVED
