"""The incident's status rules, in one place: what each step of triage moves it to.

    open ──► triaged ──► mitigating ──► verified ──► resolved
      │         │            │             │
      └─────────┴────────────┴──► escalated ─► (triaged, mitigating, resolved)

The tasks (`tasks.records.steps`) only translate a decision or an outcome into these calls; the
transitions themselves are checked by `store.incidents.transition`.
"""

from __future__ import annotations

from sqlmodel import Session

from store.incidents import add_event, get_incident, mark_automated, transition
from store.models import EventKind, IncidentStatus

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
    """The end of the hold period: resolved if the fix held, escalated if the symptom is back."""
    if came_back is None:
        summary, to = (
            f"the fix held for {held_seconds:g} s: the probes see nothing wrong",
            IncidentStatus.RESOLVED,
        )
    else:
        summary, to = (
            f"verified, but it came back within {held_seconds:g} s: {came_back}",
            IncidentStatus.ESCALATED,
        )
    transition(session, incident_id=incident_id, to=to, summary=summary, flow_run_id=flow_run_id)
