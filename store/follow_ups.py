"""Follow-ups: the work an incident leaves behind, keyed so that the run that creates one and the
run that closes it (a scheduled revert, hours later, in another process) name the same row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, select

from store.incidents import add_event
from store.models import EventKind, FollowUpStatus, IncidentFollowUp
from store.types import utcnow


class FollowUpSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    kind: str
    priority: str
    title: str
    flow: str = ""
    parameters: dict[str, Any] = {}
    condition: str = ""
    scheduled_flow_run_id: str | None = None
    scheduled_for: datetime | None = None
    note: str = ""

    @property
    def status(self) -> FollowUpStatus:
        return FollowUpStatus.SCHEDULED if self.scheduled_flow_run_id else FollowUpStatus.OPEN


def follow_up_by_key(session: Session, key: str) -> IncidentFollowUp | None:
    return session.exec(select(IncidentFollowUp).where(IncidentFollowUp.key == key)).first()


def upsert_follow_up(
    session: Session, *, incident_id: int | None, spec: FollowUpSpec, at: datetime | None = None
) -> IncidentFollowUp:
    """Create the follow-up, or bring a known one up to date. A closed follow-up stays closed:
    the revert may have finished before the run that scheduled it recorded it."""
    when = at or utcnow()
    row = follow_up_by_key(session, spec.key)
    fields = spec.model_dump()
    if row is None:
        row = IncidentFollowUp(
            incident_id=incident_id, created_at=when, status=spec.status, **fields
        )
        session.add(row)
        session.flush()
        if incident_id is not None:
            what = "scheduled" if spec.scheduled_flow_run_id else "created"
            add_event(
                session,
                incident_id=incident_id,
                kind=EventKind.FOLLOW_UP,
                summary=f"{spec.priority} follow-up {what}: {spec.title}",
                at=when,
            )
        return row
    if row.incident_id is None:
        row.incident_id = incident_id
    if not FollowUpStatus(row.status).is_closed:
        for name, value in fields.items():
            setattr(row, name, value)
        row.status = spec.status
    session.add(row)
    session.flush()
    return row


def close_follow_up(
    session: Session,
    *,
    key: str,
    by: str,
    note: str,
    status: FollowUpStatus = FollowUpStatus.DONE,
    placeholder: FollowUpSpec | None = None,
    at: datetime | None = None,
) -> IncidentFollowUp:
    """Close it; if it was never recorded (its creator has not written it yet), record it closed
    from `placeholder` so that the later upsert does not reopen it."""
    when = at or utcnow()
    row = follow_up_by_key(session, key)
    if row is None:
        if placeholder is None:
            raise LookupError(f"no follow-up {key}")
        row = upsert_follow_up(session, incident_id=None, spec=placeholder, at=when)
    row.status, row.closed_at, row.closed_by, row.note = status, when, by, note
    session.add(row)
    if row.incident_id is not None:
        add_event(
            session,
            incident_id=row.incident_id,
            kind=EventKind.FOLLOW_UP,
            summary=f"{row.priority} follow-up {status}: {row.title} ({note})",
            at=when,
        )
    session.flush()
    return row
