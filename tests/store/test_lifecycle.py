"""The incident lifecycle in the store, on SQLite and on a real PostgreSQL server: opening on first
evidence, joining instead of opening twice, the transitions and their timestamps, merging, the
audit rows and the follow-ups."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, func, select

from store import actions, follow_ups, incidents
from store.engine import session_for
from store.models import (
    ActionStatus,
    EventKind,
    FollowUpStatus,
    Incident,
    IncidentAlert,
    IncidentStatus,
)
from store.queries import list_incidents, load_incident

S = IncidentStatus
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def store(any_store: str) -> str:
    return any_store


def alert(
    fingerprint: str, status: str = "firing", name: str = "KubePodCrashLooping"
) -> incidents.AlertEvidence:
    return incidents.AlertEvidence(
        fingerprint=fingerprint,
        alertname=name,
        status=status,
        labels={"namespace": "alphaswarm", "pod": "alphaswarm-core-0"},
        starts_at=T0,
    )


def evidence(
    *alerts: incidents.AlertEvidence, key: str = "alert:alphaswarm/alphaswarm-core-0"
) -> incidents.Evidence:
    return incidents.Evidence(target_key=key, title="core crashes", alerts=alerts)


def count(url: str, table: type[SQLModel]) -> int:
    with session_for(url) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_first_evidence_opens_an_incident_started_at_the_alerts_start(store: str) -> None:
    with session_for(store) as s:
        incident, joined = incidents.open_or_join(s, evidence=evidence(alert("f1")))
    assert not joined and incident.status is S.OPEN
    assert incident.started_at == T0 and incident.opened_at > T0
    assert incident.opened_at.tzinfo is not None  # aware on both backends
    with session_for(store) as s:
        record = load_incident(s, incident_id=incident.id or 0)
    assert [a.fingerprint for a in record.alerts] == ["f1"]
    assert record.events[0].status is S.OPEN and record.alerts[0].starts_at == T0


def test_a_duplicate_alert_joins_and_is_counted_not_repeated(store: str) -> None:
    with session_for(store) as s:
        first, _ = incidents.open_or_join(s, evidence=evidence(alert("f1")))
    with session_for(store) as s:
        again, joined = incidents.open_or_join(s, evidence=evidence(alert("f1")))
    assert joined and again.id == first.id
    assert count(store, Incident) == 1 and count(store, IncidentAlert) == 1
    with session_for(store) as s:
        (row,) = load_incident(s, incident_id=first.id or 0).alerts
    assert row.received_count == 2


def test_another_alert_for_the_same_target_joins(store: str) -> None:
    with session_for(store) as s:
        first, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="A:ns/core"))
        second, joined = incidents.open_or_join(
            s,
            evidence=evidence(alert("f2", name="KubeDeploymentReplicasMismatch"), key="A:ns/core"),
        )
    assert joined and second.id == first.id
    assert count(store, Incident) == 1 and count(store, IncidentAlert) == 2


def test_racing_runs_open_one_incident(store: str) -> None:
    """Two runs open the same target at once: the unique open key lets one win, the other joins."""
    barrier = threading.Barrier(4)
    ids: list[int] = []

    def open_one(fingerprint: str) -> None:
        barrier.wait()
        with session_for(store) as s:
            incident, _ = incidents.open_or_join(
                s, evidence=evidence(alert(fingerprint), key="A:ns/core")
            )
            ids.append(incident.id or 0)

    threads = [threading.Thread(target=open_one, args=(f"f{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(set(ids)) == 1 and len(ids) == 4
    assert count(store, Incident) == 1 and count(store, IncidentAlert) == 4


def test_transitions_are_timestamped_once_and_a_resolved_incident_never_moves(store: str) -> None:
    with session_for(store) as s:
        incident, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="A:ns/core"))
        iid = incident.id or 0
        at = [datetime.now(UTC) + timedelta(minutes=m) for m in range(6)]
        incidents.transition(s, incident_id=iid, to=S.TRIAGED, summary="A", at=at[0])
        incidents.transition(s, incident_id=iid, to=S.TRIAGED, summary="A again", at=at[1])
        incidents.transition(s, incident_id=iid, to=S.MITIGATING, summary="restart", at=at[2])
        incidents.transition(s, incident_id=iid, to=S.VERIFIED, summary="ok", at=at[3])
        done = incidents.transition(s, incident_id=iid, to=S.RESOLVED, summary="held", at=at[4])
    assert done.triaged_at == at[0]  # the first time, not the re-triage
    assert (done.mitigating_at, done.verified_at, done.resolved_at) == (at[2], at[3], at[4])
    assert done.open_key is None and done.resolution == "held"
    with session_for(store) as s, pytest.raises(incidents.InvalidTransition, match="resolved"):
        incidents.transition(s, incident_id=iid, to=S.MITIGATING, summary="no")
    with session_for(store) as s:
        events = load_incident(s, incident_id=iid).events
        statuses = [e.status for e in events if e.kind is EventKind.TRANSITION]
    assert statuses == [S.OPEN, S.TRIAGED, S.TRIAGED, S.MITIGATING, S.VERIFIED, S.RESOLVED]


def test_an_open_incident_cannot_jump_to_verified(store: str) -> None:
    with session_for(store) as s:
        incident, _ = incidents.open_or_join(s, evidence=evidence(alert("f1")))
        with pytest.raises(incidents.InvalidTransition, match="cannot become verified"):
            incidents.transition(s, incident_id=incident.id or 0, to=S.VERIFIED, summary="x")


def test_after_resolution_the_same_target_opens_a_new_incident(store: str) -> None:
    with session_for(store) as s:
        first, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="A:ns/core"))
        incidents.transition(s, incident_id=first.id or 0, to=S.RESOLVED, summary="gone")
    with session_for(store) as s:
        second, joined = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="A:ns/core"))
    assert not joined and second.id != first.id


def test_resolved_alerts_are_recorded_and_tell_when_all_resolved(store: str) -> None:
    with session_for(store) as s:
        incident, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), alert("f2")))
        iid = incident.id or 0
        incidents.record_alerts(s, incident_id=iid, alerts=(alert("f1", "resolved"),), at=T0)
        assert not incidents.all_alerts_resolved(s, incident_id=iid)
        incidents.record_alerts(s, incident_id=iid, alerts=(alert("f2", "resolved"),), at=T0)
        assert incidents.all_alerts_resolved(s, incident_id=iid)
        alert_lines = [
            e.summary for e in load_incident(s, incident_id=iid).events if e.kind is EventKind.ALERT
        ]
    assert sum("resolved" in line for line in alert_lines) == 2


def test_a_decision_for_a_target_already_open_merges_the_incidents(store: str) -> None:
    with session_for(store) as s:
        older, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="A:ns/core"))
        newer, _ = incidents.open_or_join(s, evidence=evidence(alert("f2"), key="alert:ns/other"))
        actions.begin_action(
            s,
            start=actions.ActionStart(
                change_key="k1",
                action="rollout-restart",
                target_key="Deployment/ns/core",
                dry_run=True,
                summary="plan",
                incident_id=newer.id,
            ),
        )
        survivor = incidents.record_decision(
            s,
            incident_id=newer.id or 0,
            decision=incidents.DecisionEvidence(scenario="A", reason="one pod crashes"),
            target_key="A:ns/core",
        )
    assert survivor.id == older.id and survivor.scenario == "A"
    assert count(store, Incident) == 1
    with session_for(store) as s:
        record = load_incident(s, incident_id=older.id or 0)
    assert {a.fingerprint for a in record.alerts} == {"f1", "f2"}
    assert [a.change_key for a in record.actions] == ["k1"]
    assert len(record.decisions) == 1
    assert any(e.kind is EventKind.MERGED for e in record.events)


def test_racing_decisions_for_one_target_merge_into_one_incident(store: str) -> None:
    """Two pods of one Deployment crash: an incident each, and both runs decide on the
    Deployment at once. The first run's key is not committed when the second keys its incident:
    on PostgreSQL the second waits on the unique open key, then merges into the first instead
    of failing with UniqueViolation (seen in CI)."""
    with session_for(store) as s:
        first, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="pod:ns/core-1"))
        second, _ = incidents.open_or_join(s, evidence=evidence(alert("f2"), key="pod:ns/core-2"))
    keyed, release = threading.Event(), threading.Event()
    survivors: dict[int, int] = {}

    def decide(incident_id: int, hold: bool) -> None:
        with session_for(store) as s:
            survivor = incidents.record_decision(
                s,
                incident_id=incident_id,
                decision=incidents.DecisionEvidence(scenario="B", reason="two pods crash"),
                target_key="B:ns/core",
            )
            if hold:  # the transaction stays open, its key uncommitted
                keyed.set()
                release.wait(30)
            survivors[incident_id] = survivor.id or 0

    holder = threading.Thread(target=decide, args=(first.id, True))
    holder.start()
    assert keyed.wait(30)
    racer = threading.Thread(target=decide, args=(second.id, False))
    racer.start()
    wait_until_blocked(store)
    release.set()
    holder.join(30)
    racer.join(30)
    assert survivors == {first.id: first.id, second.id: first.id}
    assert count(store, Incident) == 1
    with session_for(store) as s:
        record = load_incident(s, incident_id=first.id or 0)
    assert len(record.decisions) == 2 and {a.fingerprint for a in record.alerts} == {"f1", "f2"}


def wait_until_blocked(url: str) -> None:
    """Until another connection waits on a lock: on PostgreSQL, the racer on the unique key
    (pg_stat_activity); on SQLite, on the write lock, which no view shows: a moment."""
    if not url.startswith("postgresql"):
        time.sleep(0.5)
        return
    deadline = time.monotonic() + 30
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    while time.monotonic() < deadline:
        with session_for(url, read_only=True) as s:
            if s.execute(text(waiting)).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("the second decision never waited on the first's key")


def test_the_audit_row_counts_attempts_and_keeps_before_and_after(store: str) -> None:
    start = actions.ActionStart(
        change_key="task-run-1",
        action="scale",
        target_key="Deployment/ns/worker",
        dry_run=False,
        summary="kubectl scale --replicas=8",
        before={"replicas": 2},
    )
    with session_for(store) as s:
        actions.begin_action(s, start=start)
        actions.fail_action(s, change_key="task-run-1", error="HTTP 503")
        actions.begin_action(s, start=start)  # the retry
        row = actions.finish_action(
            s,
            change_key="task-run-1",
            status=ActionStatus.APPLIED,
            after={"replicas": 8},
            revert={"action": "scale", "value": 2},
        )
    assert row.attempts == 2 and row.status is ActionStatus.APPLIED and row.error == ""
    assert row.before == {"replicas": 2} and row.after == {"replicas": 8}
    assert row.finished_at is not None and row.finished_at >= row.started_at


def test_a_closed_follow_up_is_never_reopened_by_a_late_upsert(store: str) -> None:
    spec = follow_ups.FollowUpSpec(
        key="revert-k1",
        kind="revert",
        priority="P1",
        title="revert ALPHASWARM_AUTH_ENFORCE",
        flow="revert-auth-enforce",
        scheduled_flow_run_id="run-1",
    )
    with session_for(store) as s:
        incident, _ = incidents.open_or_join(s, evidence=evidence(alert("f1")))
        # The revert finished before the run that scheduled it recorded the follow-up.
        closed = follow_ups.close_follow_up(
            s, key="revert-k1", by="flow run revert", note="restored", placeholder=spec
        )
        assert closed.status is FollowUpStatus.DONE and closed.incident_id is None
        late = follow_ups.upsert_follow_up(s, incident_id=incident.id, spec=spec)
    assert late.id == closed.id and late.status is FollowUpStatus.DONE
    assert late.incident_id == incident.id


def test_list_filters_by_status_and_scenario(store: str) -> None:
    with session_for(store) as s:
        for n, (key, scenario) in enumerate([("A:1", "A"), ("B:1", "B"), ("A:2", "A")]):
            incident, _ = incidents.open_or_join(s, evidence=evidence(alert(f"f{n}"), key=key))
            incident.scenario = scenario
            s.add(incident)
        s.flush()
        incidents.transition(s, incident_id=incident.id or 0, to=S.RESOLVED, summary="x")
    with session_for(store) as s:
        assert len(list_incidents(s)) == 3
        assert [i.target_key for i in list_incidents(s, scenarios=["A"])] == ["A:2", "A:1"]
        assert [i.target_key for i in list_incidents(s, statuses=["resolved"])] == ["A:2"]
        assert [i.target_key for i in list_incidents(s, statuses=["open"], scenarios=["B"])] == [
            "B:1"
        ]


def test_the_restarts_applied_for_an_incident_feed_a_restart_cap(store: str) -> None:
    """A's cap ("a restart that did not help twice will not help a third time") counts the
    restarts applied to the target for this incident: not plans, not failures, not others."""
    with session_for(store) as s:
        opened, _ = incidents.open_or_join(s, evidence=evidence(alert("f1")))
        assert opened.id is not None
        rows = [
            ("r1", "rollout-restart", "Deployment/alphaswarm/alphaswarm-core", False, True),
            ("r2", "rollout-restart", "Deployment/alphaswarm/alphaswarm-core", False, True),
            ("plan", "rollout-restart", "Deployment/alphaswarm/alphaswarm-core", True, True),
            ("failed", "rollout-restart", "Deployment/alphaswarm/alphaswarm-core", False, False),
            ("other", "rollout-restart", "Deployment/alphaswarm/alphaswarm-client", False, True),
            ("scale", "scale", "Deployment/alphaswarm/alphaswarm-core", False, True),
        ]
        for key, action, target, dry_run, applied in rows:
            actions.begin_action(
                s,
                start=actions.ActionStart(
                    change_key=key,
                    action=action,
                    target_key=target,
                    dry_run=dry_run,
                    summary=key,
                    incident_id=opened.id,
                ),
            )
            if applied:
                status = ActionStatus.PLANNED if dry_run else ActionStatus.APPLIED
                actions.finish_action(s, change_key=key, status=status, after={}, revert=None)
            else:
                actions.fail_action(s, change_key=key, error="HTTP 422")
        counted = actions.count_applied(
            s,
            incident_id=opened.id,
            action="rollout-restart",
            target_key="Deployment/alphaswarm/alphaswarm-core",
        )
    assert counted == 2
