"""The incident's status rules, in one place: what each step of triage moves it to.

    open ──► triaged ──► mitigating ──► verified ──► held ──► resolved ──(relapse)──► open
      │         │            │             │          │
      └─────────┴────────────┴─────────────┴──────────┴──► escalated ─► (triaged, mitigating,
                                                                        resolved)

Resolved takes both sides: the cluster shows the symptom gone for the hold period (`held`), and
every alert of the incident has resolved (Alertmanager's resolved notification; an incident no
alert opened needs only the first). Whichever comes last resolves it.

The tasks (`tasks.records.steps`) only translate a decision or an outcome into these calls; the
transitions themselves are checked by `store.incidents.transition`.
"""

from __future__ import annotations

from sqlmodel import Session

from store.incidents import (
    add_event,
    all_alerts_resolved,
    firing_alerts,
    get_incident,
    mark_automated,
    transition,
)
from store.models import EventKind, IncidentStatus
from store.types import utcnow

# Already being fixed, or fixed and holding: a new decision is a line on the timeline.
UNDER_WAY = (IncidentStatus.MITIGATING, IncidentStatus.VERIFIED)

# What a scenario flow's result makes of the incident (a plan changes nothing).
OUTCOME_STATUS = {
    "mitigated": IncidentStatus.VERIFIED,
    "escalated": IncidentStatus.ESCALATED,
    "failed": IncidentStatus.ESCALATED,
    # Only once the caller has looked at the symptom again and found it gone: a scenario that
    # finds nothing to do while the symptom is still there is reported escalated instead.
    "nothing_to_do": IncidentStatus.RESOLVED,
}


def note(session: Session, *, incident_id: int, summary: str, flow_run_id: str | None) -> None:
    add_event(
        session,
        incident_id=incident_id,
        kind=EventKind.NOTE,
        summary=summary,
        flow_run_id=flow_run_id,
    )


def triaged(
    session: Session,
    *,
    incident_id: int,
    escalate: bool,
    summary: str,
    flow_run_id: str | None,
) -> None:
    """A decision: escalated, or triaged; while the incident is under way (a resent alert lags
    behind the fix), a note, and acting again is the caller's call."""
    status = IncidentStatus(get_incident(session, incident_id=incident_id).status)
    if status in UNDER_WAY and not escalate:
        note(
            session,
            incident_id=incident_id,
            summary=f"triaged again while {status}: {summary}",
            flow_run_id=flow_run_id,
        )
        return
    to = IncidentStatus.ESCALATED if escalate else IncidentStatus.TRIAGED
    transition(session, incident_id=incident_id, to=to, summary=summary, flow_run_id=flow_run_id)


def settled(
    session: Session, *, incident_id: int, result: str, summary: str, flow_run_id: str | None
) -> None:
    """A scenario flow's result (`mitigated`, `escalated`, `failed`, `nothing_to_do`; a plan
    changes nothing). A verified fix counts as mitigated automatically."""
    to = OUTCOME_STATUS.get(result)
    if to is None:
        return
    transition(session, incident_id=incident_id, to=to, summary=summary, flow_run_id=flow_run_id)
    if to is IncidentStatus.VERIFIED:
        mark_automated(session, incident_id=incident_id)


def held(
    session: Session,
    *,
    incident_id: int,
    came_back: str | None,
    held_seconds: float,
    flow_run_id: str | None,
) -> None:
    """The end of the hold period: escalated if the symptom is back; otherwise held, and
    resolved if its alerts have resolved too (or it has none), else waiting for them."""
    if came_back is not None:
        summary = f"verified, but it came back within {held_seconds:g} s: {came_back}"
        transition(
            session,
            incident_id=incident_id,
            to=IncidentStatus.ESCALATED,
            summary=summary,
            flow_run_id=flow_run_id,
        )
        return
    summary = f"the fix held for {held_seconds:g} s: the probes see nothing wrong"
    fixed(session, incident_id=incident_id, summary=summary, flow_run_id=flow_run_id)


def fixed(session: Session, *, incident_id: int, summary: str, flow_run_id: str | None) -> None:
    """The cluster shows the symptom gone: resolved if every alert of the incident has resolved
    too (or it has none); else a note, and the last resolved notification resolves it."""
    incident = get_incident(session, incident_id=incident_id)
    incident.held_at = utcnow()
    session.add(incident)
    still = firing_alerts(session, incident_id=incident_id)
    if still:
        incident.resolution = summary  # how it will have ended, once its alerts resolve
        note(
            session,
            incident_id=incident_id,
            summary=f"{summary}; waiting for its alerts to resolve ({', '.join(still)} still "
            "firing)",
            flow_run_id=flow_run_id,
        )
        return
    if all_alerts_resolved(session, incident_id=incident_id):
        summary += ", and every alert of the incident resolved"
    transition(
        session,
        incident_id=incident_id,
        to=IncidentStatus.RESOLVED,
        summary=summary,
        flow_run_id=flow_run_id,
    )
