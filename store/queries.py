"""Reading incidents back: one incident with all its parts, and filtered lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from store.incidents import get_incident
from store.models import (
    Incident,
    IncidentAction,
    IncidentAlert,
    IncidentDecision,
    IncidentEvent,
    IncidentFollowUp,
)


@dataclass(frozen=True)
class IncidentRecord:
    """An incident and everything recorded about it, each part in time order."""

    incident: Incident
    alerts: tuple[IncidentAlert, ...]
    decisions: tuple[IncidentDecision, ...]
    actions: tuple[IncidentAction, ...]
    follow_ups: tuple[IncidentFollowUp, ...]
    events: tuple[IncidentEvent, ...]

    @property
    def id(self) -> int:
        assert self.incident.id is not None
        return self.incident.id


def load_incident(session: Session, *, incident_id: int) -> IncidentRecord:
    incident = get_incident(session, incident_id=incident_id)
    return IncidentRecord(
        incident=incident,
        alerts=tuple(
            session.exec(
                select(IncidentAlert)
                .where(IncidentAlert.incident_id == incident_id)
                .order_by(col(IncidentAlert.starts_at), col(IncidentAlert.id))
            ).all()
        ),
        decisions=tuple(
            session.exec(
                select(IncidentDecision)
                .where(IncidentDecision.incident_id == incident_id)
                .order_by(col(IncidentDecision.at), col(IncidentDecision.id))
            ).all()
        ),
        actions=tuple(
            session.exec(
                select(IncidentAction)
                .where(IncidentAction.incident_id == incident_id)
                .order_by(col(IncidentAction.started_at), col(IncidentAction.id))
            ).all()
        ),
        follow_ups=tuple(
            session.exec(
                select(IncidentFollowUp)
                .where(IncidentFollowUp.incident_id == incident_id)
                .order_by(col(IncidentFollowUp.created_at), col(IncidentFollowUp.id))
            ).all()
        ),
        events=tuple(
            session.exec(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident_id)
                .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
            ).all()
        ),
    )


def list_incidents(
    session: Session,
    *,
    statuses: Sequence[str] = (),
    scenarios: Sequence[str] = (),
    since: datetime | None = None,
    limit: int | None = 50,
) -> list[Incident]:
    """Newest first."""
    query = select(Incident)
    if statuses:
        query = query.where(col(Incident.status).in_(list(statuses)))
    if scenarios:
        query = query.where(col(Incident.scenario).in_(list(scenarios)))
    if since is not None:
        query = query.where(col(Incident.opened_at) >= since)
    query = query.order_by(col(Incident.opened_at).desc(), col(Incident.id).desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())
