"""An incident's life follows its alerts as well as the cluster, on SQLite and PostgreSQL:
resolved only once the fix held AND every alert resolved, whichever comes last; a firing alert
about the object of a resolved incident reopens it as a relapse, with the earlier fix in its
evidence and its actions (so the restart cap) carried along."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from store import actions, incidents, lifecycle
from store.engine import session_for
from store.models import ActionStatus, EventKind, IncidentStatus
from store.queries import load_incident
from tests.store.test_lifecycle import T0, alert, evidence

S = IncidentStatus
WINDOW = timedelta(hours=1)


@pytest.fixture(autouse=True)
def store(any_store: str) -> str:
    return any_store


def _verified(s: Session, fingerprint: str = "f1") -> int:
    incident, _ = incidents.open_or_join(s, evidence=evidence(alert(fingerprint), key="A:ns/core"))
    iid = incident.id or 0
    incidents.record_decision(
        s,
        incident_id=iid,
        decision=incidents.DecisionEvidence(
            scenario="A", reason="one pod crash-loops", namespace="alphaswarm", target="core"
        ),
        target_key="A:alphaswarm/core",
    )
    for to in (S.TRIAGED, S.MITIGATING, S.VERIFIED):
        incidents.transition(s, incident_id=iid, to=to, summary=str(to))
    return iid


def _restart(s: Session, iid: int, key: str) -> None:
    actions.begin_action(
        s,
        start=actions.ActionStart(
            change_key=key,
            action="rollout-restart",
            target_key="Deployment/alphaswarm/core",
            dry_run=False,
            summary="rollout restart deployment alphaswarm/core",
            incident_id=iid,
        ),
    )
    actions.finish_action(
        s,
        change_key=key,
        status=ActionStatus.APPLIED,
        after={},
        revert=None,
    )


def test_a_held_fix_waits_for_its_alerts_and_the_resolved_notification_resolves(
    store: str,
) -> None:
    with session_for(store) as s:
        iid = _verified(s)
        lifecycle.held(s, incident_id=iid, came_back=None, held_seconds=5, flow_run_id=None)
        assert incidents.get_incident(s, incident_id=iid).status == S.VERIFIED
        found = incidents.record_resolved(
            s, alerts=(alert("f1", "resolved"),), summary="every alert resolved"
        )
        assert found is not None and found.status == S.RESOLVED
        timeline = [e.summary for e in load_incident(s, incident_id=iid).events]
    assert any("waiting for its alerts to resolve (KubePodCrashLooping" in t for t in timeline)


def test_alerts_resolving_before_the_hold_ends_leave_the_resolution_to_the_hold(
    store: str,
) -> None:
    with session_for(store) as s:
        iid = _verified(s)
        incidents.record_resolved(s, alerts=(alert("f1", "resolved"),), summary="resolved")
        assert incidents.get_incident(s, incident_id=iid).status == S.VERIFIED
        lifecycle.held(s, incident_id=iid, came_back=None, held_seconds=5, flow_run_id=None)
        incident = incidents.get_incident(s, incident_id=iid)
    assert incident.status == S.RESOLVED
    assert "every alert of the incident resolved" in incident.resolution


def test_an_incident_no_alert_opened_resolves_when_the_fix_held(store: str) -> None:
    with session_for(store) as s:
        incident, _ = incidents.open_or_join(s, evidence=evidence(key="A:ns/core"))
        iid = incident.id or 0
        for to in (S.TRIAGED, S.MITIGATING, S.VERIFIED):
            incidents.transition(s, incident_id=iid, to=to, summary=str(to))
        lifecycle.held(s, incident_id=iid, came_back=None, held_seconds=5, flow_run_id=None)
        assert incidents.get_incident(s, incident_id=iid).status == S.RESOLVED


def _resolved_after_restart(s: Session) -> int:
    iid = _verified(s)
    _restart(s, iid, "restart-1")
    lifecycle.held(s, incident_id=iid, came_back=None, held_seconds=5, flow_run_id=None)
    incidents.record_resolved(s, alerts=(alert("f1", "resolved"),), summary="resolved")
    return iid


def test_a_firing_alert_about_the_object_of_a_resolved_incident_reopens_it(store: str) -> None:
    """The restarted Deployment's new pod crash-loops: a new fingerprint, the same object."""
    with session_for(store) as s:
        iid = _resolved_after_restart(s)
        new_pod = evidence(alert("f2"), key="alert:alphaswarm/core")
        new_pod = new_pod.model_copy(update={"relapse_window": WINDOW})
        again, arrival = incidents.arrive(s, evidence=new_pod)
        assert (again.id, arrival) == (iid, incidents.Arrival.REOPENED)
        assert again.status == S.OPEN and again.relapses == 1 and again.held_at is None
        assert again.open_key == "A:alphaswarm/core"
        # The restart cap counts across the relapse: the earlier restart is still its own.
        assert (
            actions.count_applied(
                s,
                incident_id=iid,
                action="rollout-restart",
                target_key="Deployment/alphaswarm/core",
            )
            == 1
        )
        record = load_incident(s, incident_id=iid)
    relapse = [e for e in record.events if e.kind is EventKind.RELAPSE]
    assert len(relapse) == 1 and relapse[0].status == S.OPEN
    assert "the earlier fix: rollout restart deployment alphaswarm/core" in relapse[0].summary
    assert any(
        line.startswith("relapse 1: KubePodCrashLooping fired") for line in record.incident.evidence
    )
    kinds = [e.kind for e in record.events]
    assert kinds.index(EventKind.RELAPSE) > max(
        i for i, e in enumerate(record.events) if e.status == S.RESOLVED
    )


def test_the_same_fingerprint_firing_again_reopens_it_and_a_new_decision_keeps_the_fix(
    store: str,
) -> None:
    """Label-stable alerts (pg_up, a queue) fire again with the same fingerprint."""
    with session_for(store) as s:
        iid = _resolved_after_restart(s)
        same = evidence(alert("f1"), key="alert:elsewhere/x").model_copy(
            update={"relapse_window": WINDOW}
        )
        again, arrival = incidents.arrive(s, evidence=same)
        assert (again.id, arrival) == (iid, incidents.Arrival.REOPENED)
        decided = incidents.record_decision(
            s,
            incident_id=iid,
            decision=incidents.DecisionEvidence(scenario="A", reason="crash again"),
            target_key="A:alphaswarm/core",
        )
    assert decided.evidence[0].startswith("relapse 1:")


def test_past_the_relapse_window_or_without_one_a_new_incident_opens(store: str) -> None:
    with session_for(store) as s:
        iid = _resolved_after_restart(s)
        without = evidence(alert("f2"), key="alert:alphaswarm/core")
        fresh, arrival = incidents.arrive(s, evidence=without)
        assert arrival is incidents.Arrival.OPENED and fresh.id != iid
    with session_for(store) as s:
        iid = _resolved_after_restart(s)
        # resolved "now", so a window that ends before now finds nothing
        found = incidents.find_relapsed(
            s,
            fingerprints=("f1",),
            target_key="alert:alphaswarm/core",
            since=incidents.utcnow() + timedelta(seconds=1),
        )
        assert found is None


def _sweep_alert(fingerprint: str) -> incidents.AlertEvidence:
    """What the health sweep hands the intake: an observation, never followed by a resolved."""
    return incidents.AlertEvidence(
        fingerprint=fingerprint,
        alertname="HealthSweepCrashLooping",
        status="firing",
        labels={"namespace": "alphaswarm", "deployment": "core", "source": "health-sweep"},
        starts_at=T0,
    )


def test_a_sweep_alert_that_joined_waits_for_nothing_the_sweep_never_sends(store: str) -> None:
    """The monitoring loop saw it: a sweep's finding joined an Alertmanager incident, the fix held
    and Alertmanager resolved its alert, and the incident stayed open for the alert wait, since
    the sweep never sends "resolved". Its end is the fix's hold."""
    with session_for(store) as s:
        iid = _verified(s)
        incidents.record_alerts(s, incident_id=iid, alerts=(_sweep_alert("sweep-1"),), at=T0)
        lifecycle.held(s, incident_id=iid, came_back=None, held_seconds=5, flow_run_id=None)
        assert incidents.firing_alerts(s, incident_id=iid) == ["KubePodCrashLooping"]
        found = incidents.record_resolved(
            s, alerts=(alert("f1", "resolved"),), summary="every alert resolved"
        )
        assert found is not None and found.status == S.RESOLVED


def test_an_incident_the_sweep_alone_reported_resolves_when_the_fix_holds(store: str) -> None:
    with session_for(store) as s:
        incident, _ = incidents.open_or_join(
            s, evidence=evidence(_sweep_alert("sweep-2"), key="A:ns/core")
        )
        iid = incident.id or 0
        for to in (S.TRIAGED, S.MITIGATING, S.VERIFIED):
            incidents.transition(s, incident_id=iid, to=to, summary=str(to))
        lifecycle.held(s, incident_id=iid, came_back=None, held_seconds=5, flow_run_id=None)
        assert incidents.get_incident(s, incident_id=iid).status == S.RESOLVED
