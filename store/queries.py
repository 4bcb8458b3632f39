"""Reading incidents back: one incident with all its parts, and filtered lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

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

Part = TypeVar(
    "Part", IncidentAlert, IncidentDecision, IncidentAction, IncidentFollowUp, IncidentEvent
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


def _parts(session: Session, table: type[Part], incident_id: int, when: Any) -> tuple[Part, ...]:
    """The incident's rows of one table, in time order (ties by insertion)."""
    query = (
        select(table)
        .where(col(table.incident_id) == incident_id)
        .order_by(col(when), col(table.id))
    )
    return tuple(session.exec(query).all())


def load_incident(session: Session, *, incident_id: int) -> IncidentRecord:
    incident = get_incident(session, incident_id=incident_id)
    return IncidentRecord(
        incident=incident,
        alerts=_parts(session, IncidentAlert, incident_id, IncidentAlert.starts_at),
        decisions=_parts(session, IncidentDecision, incident_id, IncidentDecision.at),
        actions=_parts(session, IncidentAction, incident_id, IncidentAction.started_at),
        follow_ups=_parts(session, IncidentFollowUp, incident_id, IncidentFollowUp.created_at),
        events=_parts(session, IncidentEvent, incident_id, IncidentEvent.at),
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
