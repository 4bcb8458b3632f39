"""An incident's lifecycle: opened on first evidence, joined by later evidence, moved through
its statuses, resolved. Keyword-only data functions that take the session explicitly.

    open ──► triaged ──► mitigating ──► verified ──► resolved ──(relapse)──► open
      │         │            │             │
      └─────────┴────────────┴──► escalated ─► (triaged, mitigating, resolved)

A new alert joins the open incident that already holds its fingerprint, or the one open for the
same target; failing that, a firing alert about the object of an incident that resolved within
the relapse window reopens it (`reopen`: the same incident, so its earlier fix is in its record
and the runbook's restart cap counts across the relapse); only then is a new incident opened.
Every transition is an event with its time; the timeline is those events, in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.models import (
    ActionStatus,
    EventKind,
    Incident,
    IncidentAction,
    IncidentAlert,
    IncidentDecision,
    IncidentEvent,
    IncidentFollowUp,
    IncidentStatus,
)
from store.types import utcnow

S = IncidentStatus
ALLOWED: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.OPEN: frozenset({S.TRIAGED, S.ESCALATED, S.RESOLVED}),
    S.TRIAGED: frozenset({S.TRIAGED, S.MITIGATING, S.ESCALATED, S.RESOLVED}),
    S.MITIGATING: frozenset({S.MITIGATING, S.VERIFIED, S.ESCALATED, S.RESOLVED}),
    S.VERIFIED: frozenset({S.VERIFIED, S.MITIGATING, S.ESCALATED, S.RESOLVED}),
    S.ESCALATED: frozenset({S.ESCALATED, S.TRIAGED, S.MITIGATING, S.RESOLVED}),
    S.RESOLVED: frozenset(),
}
# The column that keeps when an incident first reached a status.
_REACHED = {
    S.TRIAGED: "triaged_at",
    S.MITIGATING: "mitigating_at",
    S.VERIFIED: "verified_at",
    S.ESCALATED: "escalated_at",
    S.RESOLVED: "resolved_at",
}


class InvalidTransition(ValueError):
    """The incident cannot move to that status from where it is (a resolved one never moves)."""


class IncidentNotFound(LookupError):
    pass


class AlertEvidence(BaseModel):
    """One alert as the store keeps it."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str
    alertname: str = ""
    status: str = "firing"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    group_key: str = ""


class Evidence(BaseModel):
    """What opens an incident or joins one: the alerts (none for a sweep's finding) and the
    target they point at."""

    model_config = ConfigDict(frozen=True)

    target_key: str
    title: str
    alerts: tuple[AlertEvidence, ...] = ()
    trigger: str = "alertmanager"
    environment: str = "unknown"  # REMEDIATE_ENVIRONMENT unset: never assumed dev
    flow_run_id: str | None = None
    # Reopen an incident about the same object that resolved at most this long ago (a relapse);
    # None: never reopen, always open a new one.
    relapse_window: timedelta | None = None


class DecisionEvidence(BaseModel):
    """A triage decision as the store keeps it."""

    model_config = ConfigDict(frozen=True)

    scenario: str | None
    reason: str
    escalate: bool = False
    dry_run: bool = True
    namespace: str | None = None
    target: str | None = None
    evidence: tuple[str, ...] = ()
    flow_run_id: str | None = None


def get_incident(session: Session, *, incident_id: int) -> Incident:
    found = session.get(Incident, incident_id)
    if found is None:
        raise IncidentNotFound(f"no incident {incident_id}")
    return found


def add_event(
    session: Session,
    *,
    incident_id: int,
    kind: EventKind,
    summary: str,
    at: datetime | None = None,
    status: IncidentStatus | None = None,
    flow_run_id: str | None = None,
) -> IncidentEvent:
    row = IncidentEvent(
        incident_id=incident_id,
        kind=kind,
        summary=summary,
        at=at or utcnow(),
        status=status,
        flow_run_id=flow_run_id,
    )
    session.add(row)
    session.flush()
    return row


def find_open(
    session: Session, *, fingerprints: tuple[str, ...] = (), target_key: str | None = None
) -> Incident | None:
    """The open incident these alerts or this target belong to, oldest first."""
    if fingerprints:
        by_alert = session.exec(
            select(Incident)
            .join(IncidentAlert, col(IncidentAlert.incident_id) == col(Incident.id))
            .where(col(Incident.open_key).is_not(None))
            .where(col(IncidentAlert.fingerprint).in_(fingerprints))
            .order_by(col(Incident.opened_at))
        ).first()
        if by_alert is not None:
            return by_alert
    if target_key is not None:
        return session.exec(select(Incident).where(Incident.open_key == target_key)).first()
    return None


class Arrival(StrEnum):
    """What evidence did to incidents: opened one, joined an open one, reopened a resolved one."""

    OPENED = "opened"
    JOINED = "joined"
    REOPENED = "reopened"


def open_or_join(session: Session, *, evidence: Evidence) -> tuple[Incident, bool]:
    """The incident this evidence belongs to, and whether it was there already (open, or
    reopened as a relapse)."""
    incident, arrival = arrive(session, evidence=evidence)
    return incident, arrival is not Arrival.OPENED


def arrive(session: Session, *, evidence: Evidence) -> tuple[Incident, Arrival]:
    """The incident this evidence belongs to: the open one, a relapsed one reopened (with
    `evidence.relapse_window`), or a new one.

    Two runs may race to open the same target: the unique `open_key` lets only one insert win,
    and the loser joins the winner's incident instead of failing."""
    fingerprints = tuple(a.fingerprint for a in evidence.alerts)
    now = utcnow()
    for _ in range(3):
        found = find_open(session, fingerprints=fingerprints, target_key=evidence.target_key)
        arrival = Arrival.JOINED
        if found is None and evidence.relapse_window is not None:
            found = _reopen_relapsed(session, evidence, now - evidence.relapse_window, now)
            arrival = Arrival.REOPENED
        if found is not None:
            assert found.id is not None
            record_alerts(session, incident_id=found.id, alerts=evidence.alerts, at=now)
            return found, arrival
        started = min((a.starts_at for a in evidence.alerts), default=now)
        incident = Incident(
            title=evidence.title,
            target_key=evidence.target_key,
            open_key=evidence.target_key,
            trigger=evidence.trigger,
            environment=evidence.environment,
            started_at=min(started, now),
            opened_at=now,
            triage_flow_run_id=evidence.flow_run_id,
        )
        try:
            with session.begin_nested():
                session.add(incident)
                session.flush()
        except IntegrityError:
            continue  # another run opened it first: join theirs
        assert incident.id is not None
        what = f"{len(evidence.alerts)} alert(s)" if evidence.alerts else evidence.trigger
        add_event(
            session,
            incident_id=incident.id,
            kind=EventKind.TRANSITION,
            status=IncidentStatus.OPEN,
            summary=f"opened on {what}: {evidence.title}",
            at=now,
            flow_run_id=evidence.flow_run_id,
        )
        record_alerts(session, incident_id=incident.id, alerts=evidence.alerts, at=now)
        return incident, Arrival.OPENED
    raise RuntimeError(f"could neither open nor join an incident for {evidence.target_key}")


def find_relapsed(
    session: Session, *, fingerprints: tuple[str, ...], target_key: str, since: datetime
) -> Incident | None:
    """The incident resolved since `since` that these alerts or this target were about, newest
    first: it held one of the fingerprints, or triage decided it on the object `target_key`
    names (`alert:ns/name`, `A:ns/name`: a crash-looping pod's alert names a new pod after the
    restart, so its fingerprint is new while the Deployment is the same)."""
    resolved = (
        select(Incident)
        .where(col(Incident.status) == IncidentStatus.RESOLVED)
        .where(col(Incident.resolved_at) >= since)
        .order_by(col(Incident.resolved_at).desc())
    )
    if fingerprints:
        by_alert = session.exec(
            resolved.join(IncidentAlert, col(IncidentAlert.incident_id) == col(Incident.id)).where(
                col(IncidentAlert.fingerprint).in_(fingerprints)
            )
        ).first()
        if by_alert is not None:
            return by_alert
    namespace, _, name = target_key.partition(":")[2].partition("/")
    if not name or name == "-":
        return None
    return session.exec(
        resolved.where(col(Incident.namespace) == namespace).where(col(Incident.target) == name)
    ).first()


def _reopen_relapsed(
    session: Session, evidence: Evidence, since: datetime, now: datetime
) -> Incident | None:
    """Reopen the incident these alerts relapse, or None (none, or its target is open again
    under another incident: the caller joins or opens as usual)."""
    earlier = find_relapsed(
        session,
        fingerprints=tuple(a.fingerprint for a in evidence.alerts if a.status == "firing"),
        target_key=evidence.target_key,
        since=since,
    )
    if earlier is None:
        return None
    try:
        with session.begin_nested():
            reopen(session, incident=earlier, why=_relapse_signal(evidence), at=now)
    except IntegrityError:
        return None
    return earlier


def _relapse_signal(evidence: Evidence) -> str:
    names = sorted({a.alertname or a.fingerprint for a in evidence.alerts})
    return f"{', '.join(names)} fired" if names else f"the {evidence.trigger} found it again"


def reopen(session: Session, *, incident: Incident, why: str, at: datetime | None = None) -> None:
    """A resolved incident came back: open again (keyed by its target, so later evidence joins
    it), with its earlier resolution and fix on the timeline and in its evidence. Its actions
    stay its own, so the runbook's caps (A: two restarts, then escalate) count across it."""
    assert incident.id is not None and incident.resolved_at is not None
    when = at or utcnow()
    incident.relapses += 1
    fix = earlier_fix(session, incident_id=incident.id)
    line = (
        f"relapse {incident.relapses}: {why} {_ago(when - incident.resolved_at)} after it "
        f"resolved ({incident.resolution}); the earlier fix: {fix}"
    )
    incident.status, incident.open_key = IncidentStatus.OPEN, incident.target_key
    incident.held_at = incident.resolved_at = None
    incident.resolution = ""
    incident.evidence = [*incident.evidence, line]
    session.add(incident)
    session.flush()
    add_event(
        session,
        incident_id=incident.id,
        kind=EventKind.RELAPSE,
        status=IncidentStatus.OPEN,
        summary=line,
        at=when,
    )


def earlier_fix(session: Session, *, incident_id: int) -> str:
    """The changes applied for the incident so far, one phrase."""
    applied = session.exec(
        select(IncidentAction.summary)
        .where(IncidentAction.incident_id == incident_id)
        .where(col(IncidentAction.status) == ActionStatus.APPLIED)
        .where(col(IncidentAction.dry_run).is_(False))
        .order_by(col(IncidentAction.id))
    ).all()
    return "; ".join(applied) if applied else "none applied by this automation"


def relapse_lines(session: Session, *, incident_id: int) -> list[str]:
    """What each relapse said (the earlier fix among it), oldest first."""
    return list(
        session.exec(
            select(IncidentEvent.summary)
            .where(IncidentEvent.incident_id == incident_id)
            .where(col(IncidentEvent.kind) == EventKind.RELAPSE)
            .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
        ).all()
    )


def _ago(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0.0)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def record_alerts(
    session: Session, *, incident_id: int, alerts: tuple[AlertEvidence, ...], at: datetime
) -> None:
    """Add new alerts, count repeats of known ones (Alertmanager resends whole groups)."""
    for alert in alerts:
        known = session.exec(
            select(IncidentAlert)
            .where(IncidentAlert.incident_id == incident_id)
            .where(IncidentAlert.fingerprint == alert.fingerprint)
        ).first()
        if known is None:
            session.add(
                IncidentAlert(
                    incident_id=incident_id,
                    first_received_at=at,
                    last_received_at=at,
                    **alert.model_dump(),
                )
            )
            summary = f"alert {alert.alertname or alert.fingerprint} ({alert.fingerprint}) "
            summary += "joined" if alert.status == "firing" else "joined, already resolved"
        else:
            changed = known.status != alert.status
            known.received_count += 1
            known.last_received_at = at
            known.status, known.ends_at = alert.status, alert.ends_at
            session.add(known)
            if not changed:
                continue  # a plain resend: counted, not a timeline line
            summary = f"alert {known.alertname or known.fingerprint} is {alert.status} again"
            if alert.status == "resolved":
                summary = f"alert {known.alertname or known.fingerprint} resolved"
        add_event(session, incident_id=incident_id, kind=EventKind.ALERT, summary=summary, at=at)
    session.flush()


def awaits_hold(incident: Incident) -> bool:
    """A fix is being applied, or was verified and has not held for the hold period yet: the
    cluster has not shown the symptom gone for long enough to call it resolved."""
    status = IncidentStatus(incident.status)
    return status is IncidentStatus.MITIGATING or (
        status is IncidentStatus.VERIFIED and incident.held_at is None
    )


# Alerts with no resolved notification to come: the health sweep reports what it sees at each
# run and never sends "resolved" (its label `source`, tasks/diagnoses/health.py). For them the
# fix's hold is the end; waiting for them would hold every incident a sweep joined open until
# the alert wait runs out.
OBSERVATION_SOURCES = frozenset({"health-sweep"})


def _notified(session: Session, incident_id: int) -> list[tuple[str, str]]:
    """(name or fingerprint, status) of the incident's alerts whose source sends resolved."""
    rows = session.exec(
        select(
            IncidentAlert.alertname,
            IncidentAlert.fingerprint,
            IncidentAlert.status,
            IncidentAlert.labels,
        ).where(IncidentAlert.incident_id == incident_id)
    ).all()
    return [
        (name or fingerprint, status)
        for name, fingerprint, status, labels in rows
        if (labels or {}).get("source") not in OBSERVATION_SOURCES
    ]


def firing_alerts(session: Session, *, incident_id: int) -> list[str]:
    """The names of the incident's alerts that still fire (and will say when they resolve)."""
    return sorted(name for name, status in _notified(session, incident_id) if status != "resolved")


def all_alerts_resolved(session: Session, *, incident_id: int) -> bool:
    statuses = [status for _, status in _notified(session, incident_id)]
    return bool(statuses) and all(s == "resolved" for s in statuses)


def record_resolved(
    session: Session,
    *,
    alerts: tuple[AlertEvidence, ...],
    summary: str,
    flow_run_id: str | None = None,
) -> Incident | None:
    """Resolved alerts annotate the open incident holding them, and resolve it once every one of
    its alerts has resolved, unless a fix is under way and has not held yet: then the end of
    its hold resolves it (`store.lifecycle.held`). None: they belong to no open incident."""
    found = find_open(session, fingerprints=tuple(a.fingerprint for a in alerts))
    if found is None or found.id is None:
        return None
    record_alerts(session, incident_id=found.id, alerts=alerts, at=utcnow())
    if awaits_hold(found):
        return found
    if all_alerts_resolved(session, incident_id=found.id):
        if found.held_at is not None:  # the fix's own words (`store.lifecycle.fixed`) first
            summary = f"{found.resolution or 'the fix held on the cluster'}, and {summary}"
        return transition(
            session,
            incident_id=found.id,
            to=IncidentStatus.RESOLVED,
            summary=summary,
            flow_run_id=flow_run_id,
        )
    return found


def transition(
    session: Session,
    *,
    incident_id: int,
    to: IncidentStatus,
    summary: str,
    at: datetime | None = None,
    flow_run_id: str | None = None,
) -> Incident:
    """Move the incident to `to`, timestamped; the first time it reaches a status is kept."""
    incident = get_incident(session, incident_id=incident_id)
    current = IncidentStatus(incident.status)
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"incident {incident_id} is {current}: it cannot become {to}")
    when = at or utcnow()
    incident.status = to
    column = _REACHED.get(to)
    if column is not None and getattr(incident, column) is None:
        setattr(incident, column, when)
    if to not in (IncidentStatus.VERIFIED, IncidentStatus.RESOLVED):
        incident.held_at = None  # worked on again: a new fix must hold anew
        incident.resolution = ""
    if to is IncidentStatus.RESOLVED:
        incident.open_key = None  # a later incident for this target may open again
        incident.resolution = summary
    session.add(incident)
    add_event(
        session,
        incident_id=incident_id,
        kind=EventKind.TRANSITION,
        status=to,
        summary=summary,
        at=when,
        flow_run_id=flow_run_id,
    )
    return incident


def record_decision(
    session: Session,
    *,
    incident_id: int,
    decision: DecisionEvidence,
    target_key: str | None,
    title: str | None = None,
) -> Incident:
    """Keep the decision, make it the incident's root cause, and key the incident by the target
    triage chose. If another incident is already open for that target, this one was a part of
    it all along: it is merged into that one, which is returned."""
    incident = get_incident(session, incident_id=incident_id)
    session.add(
        IncidentDecision(
            incident_id=incident_id,
            at=utcnow(),
            **decision.model_dump(mode="python"),
        )
    )
    session.flush()  # the decision stays if keying below rolls back its savepoint
    if target_key is not None and target_key != incident.open_key:
        incident = _key_or_merge(session, incident, target_key)
    assert incident.id is not None
    incident.scenario = decision.scenario
    incident.namespace = decision.namespace
    incident.target = decision.target
    incident.root_cause = decision.reason
    incident.evidence = [*relapse_lines(session, incident_id=incident.id), *decision.evidence]
    if title is not None:
        incident.title = title
    session.add(incident)
    session.flush()
    return incident


def _key_or_merge(session: Session, incident: Incident, target_key: str) -> Incident:
    """Key the incident by `target_key`, or merge it into the open incident keyed so.

    Two runs may key their incidents by one target at once (two crash-looping pods of one
    Deployment, an incident each): neither sees the other's uncommitted key, the unique
    `open_key` lets one win, and the other merges into the winner's incident instead of failing
    (PostgreSQL; SQLite's one writer at a time never races here)."""
    assert incident.id is not None
    for _ in range(3):
        other = find_open(session, target_key=target_key)
        if other is not None and other.id != incident.id:
            assert other.id is not None
            merge(session, source_id=incident.id, into_id=other.id)
            return other
        try:
            with session.begin_nested():
                incident.target_key, incident.open_key = target_key, target_key
                session.add(incident)
                session.flush()
            return incident
        except IntegrityError:
            continue  # another run keyed its incident first: merge into theirs
    raise RuntimeError(f"could neither key incident {incident.id} by {target_key} nor merge it")


def merge(session: Session, *, source_id: int, into_id: int) -> None:
    """Move every part of `source` into `into` and delete the empty shell: one incident for one
    target, nothing lost (its alerts, decisions, actions, follow-ups and timeline move along)."""
    source = get_incident(session, incident_id=source_id)
    for alert in session.exec(
        select(IncidentAlert).where(IncidentAlert.incident_id == source_id)
    ).all():
        duplicate = session.exec(
            select(IncidentAlert)
            .where(IncidentAlert.incident_id == into_id)
            .where(IncidentAlert.fingerprint == alert.fingerprint)
        ).first()
        if duplicate is not None:
            duplicate.received_count += alert.received_count
            duplicate.last_received_at = max(duplicate.last_received_at, alert.last_received_at)
            session.add(duplicate)
            session.delete(alert)
        else:
            alert.incident_id = into_id
            session.add(alert)
    session.flush()
    for table in (IncidentDecision, IncidentEvent, IncidentAction, IncidentFollowUp):
        session.execute(
            update(table).where(col(table.incident_id) == source_id).values(incident_id=into_id)
        )
    into = get_incident(session, incident_id=into_id)
    into.started_at = min(into.started_at, source.started_at)
    session.add(into)
    add_event(
        session,
        incident_id=into_id,
        kind=EventKind.MERGED,
        summary=f"incident {source_id} ({source.title}) is the same incident: merged here",
    )
    session.delete(source)
    session.flush()


def set_report(session: Session, *, incident_id: int, path: str) -> None:
    incident = get_incident(session, incident_id=incident_id)
    incident.report_path = path
    session.add(incident)
    session.flush()


def mark_automated(session: Session, *, incident_id: int) -> None:
    incident = get_incident(session, incident_id=incident_id)
    incident.automated = True
    session.add(incident)
    session.flush()
