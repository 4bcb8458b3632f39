"""A rehearsal of what a run records, in a transaction rolled back: for a process that forks the
runs (the warm-start forkserver), so that each run inherits an engine that has compiled its
statements already.

Why: SQLAlchemy compiles a statement the first time its engine sends it, and a run's first
records did that inside their transaction, 25 ms on an idle machine. On SQLite each transaction
holds the store's one write lock (BEGIN IMMEDIATE), so while ten runs started on two cores their
first records held it 100 to 500 ms each, and the intake's answers to an alert storm queued
behind them. Rehearsed once before forking, the same records hold it for a few milliseconds.

SQLite only: on PostgreSQL a writer does not stop the others, and a rolled-back insert still
advances its sequence, so incident numbers would skip one per rehearsal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session

from store import actions, follow_ups, incidents, lifecycle, queries, safety
from store.engine import engine_for
from store.models import ActionStatus, IncidentStatus
from store.types import utcnow

REHEARSAL = "rehearsal"  # every key and name the rehearsal writes, none of it kept


def rehearse(url: str, records: Callable[[Session], None] | None = None) -> bool:
    """Run `records` (by default a run's) against the store at `url` and roll them back; False
    (nothing done) when the store is not SQLite. The engine stays, its connections closed:
    fork-safe. The intake rehearses its own records through here too."""
    if not url.startswith("sqlite"):
        return False
    engine = engine_for(url)
    with Session(engine) as session:
        try:
            (records or _an_incident_lifecycle)(session)
        finally:
            session.rollback()
    engine.dispose()  # its connections closed, the engine and its compiled statements kept
    return True


def _an_incident_lifecycle(session: Session) -> None:
    """The store calls of a triage run that mitigates: the alert opens an incident (and a copy
    joins it), the decision and its follow-up, the lease and the audited change, the outcome,
    the report."""
    now = utcnow()
    alert = incidents.AlertEvidence(fingerprint=REHEARSAL, alertname=REHEARSAL, starts_at=now)
    evidence = incidents.Evidence(target_key=REHEARSAL, title=REHEARSAL, alerts=(alert,))
    incident, _ = incidents.open_or_join(session, evidence=evidence)
    incidents.open_or_join(session, evidence=evidence)
    assert incident.id is not None
    incidents.record_decision(
        session,
        incident_id=incident.id,
        decision=incidents.DecisionEvidence(scenario="A", reason=REHEARSAL),
        target_key=f"{REHEARSAL}-decided",  # as a run's: the alert's pod, then its Deployment
    )
    lifecycle.triaged(
        session, incident_id=incident.id, escalate=False, summary=REHEARSAL, flow_run_id=None
    )
    follow_ups.upsert_follow_up(
        session,
        incident_id=incident.id,
        spec=follow_ups.FollowUpSpec(key=REHEARSAL, kind=REHEARSAL, priority="P2", title=""),
    )
    for status in (IncidentStatus.MITIGATING, IncidentStatus.VERIFIED):
        incidents.transition(session, incident_id=incident.id, to=status, summary=REHEARSAL)
    safety.take_lease(session, target_key=REHEARSAL, holder=REHEARSAL, seconds=1)
    hour_ago = now - timedelta(hours=1)
    safety.history(
        session,
        action=REHEARSAL,
        target_key=REHEARSAL,
        summary=REHEARSAL,
        budget_since=hour_ago,
        breaker_since=hour_ago,
        cooldown_since=hour_ago,
    )
    start = actions.ActionStart(
        change_key=REHEARSAL,
        action=REHEARSAL,
        target_key=REHEARSAL,
        dry_run=False,
        summary=REHEARSAL,
        incident_id=incident.id,
    )
    actions.begin_action(session, start=start)
    safety.reserve(session, change_key=REHEARSAL)
    actions.finish_action(
        session, change_key=REHEARSAL, status=ActionStatus.APPLIED, after={}, revert=None
    )
    actions.link_actions(session, change_keys=(REHEARSAL,), incident_id=incident.id)
    actions.count_applied(session, incident_id=incident.id, action=REHEARSAL, target_key=REHEARSAL)
    safety.release_lease(session, target_key=REHEARSAL, holder=REHEARSAL)
    queries.load_incident(session, incident_id=incident.id)
    incidents.set_report(session, incident_id=incident.id, path=REHEARSAL)
    session.flush()
