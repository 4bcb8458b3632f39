"""The audit trail of changes: one row per change key, written before the change is sent and
completed after it, so even a process killed in between leaves the intent and the state before.

The gate calls `begin_action` on every attempt (a Prefect retry reuses the change key, so the
row counts attempts) and `finish_action` or `fail_action` when the attempt ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, select

from store.incidents import add_event
from store.models import ActionStatus, EventKind, IncidentAction
from store.types import utcnow


class ActionStart(BaseModel):
    """The intent, as the gate knows it before sending anything."""

    model_config = ConfigDict(frozen=True)

    change_key: str
    action: str
    target_key: str
    dry_run: bool
    summary: str
    reason: str = ""
    before: dict[str, Any] = {}
    incident_id: int | None = None
    flow_run_id: str | None = None
    flow_run_name: str = ""


def _by_key(session: Session, change_key: str) -> IncidentAction | None:
    return session.exec(
        select(IncidentAction).where(IncidentAction.change_key == change_key)
    ).first()


def begin_action(
    session: Session, *, start: ActionStart, at: datetime | None = None
) -> IncidentAction:
    """Write (or, on a retry, re-open) the row before the change is sent."""
    row = _by_key(session, start.change_key)
    if row is None:
        row = IncidentAction(started_at=at or utcnow(), **start.model_dump())
    row.status = ActionStatus.IN_PROGRESS
    row.attempts += 1
    row.error = ""
    session.add(row)
    session.flush()
    return row


def finish_action(
    session: Session,
    *,
    change_key: str,
    status: ActionStatus,
    after: dict[str, Any],
    revert: dict[str, Any] | None,
    note: str = "",
    at: datetime | None = None,
    verdicts: list[dict[str, Any]] | None = None,
) -> IncidentAction:
    row = _by_key(session, change_key)
    if row is None:
        raise LookupError(f"no audit row for change {change_key}: begin_action was never called")
    when = at or utcnow()
    row.status, row.after, row.revert, row.note, row.finished_at = status, after, revert, note, when
    row.verdicts = list(verdicts or [])
    session.add(row)
    if row.incident_id is not None:
        add_event(
            session,
            incident_id=row.incident_id,
            kind=EventKind.ACTION,
            summary=f"{status}: {row.summary}",
            at=when,
            flow_run_id=row.flow_run_id,
        )
    session.flush()
    return row


def fail_action(
    session: Session, *, change_key: str, error: str, at: datetime | None = None
) -> IncidentAction | None:
    """The attempt raised: keep the error; a retry under the same key re-opens the row."""
    row = _by_key(session, change_key)
    if row is None:
        return None
    row.status, row.error, row.finished_at = ActionStatus.FAILED, error, at or utcnow()
    session.add(row)
    session.flush()
    return row


def action_by_key(session: Session, *, change_key: str) -> IncidentAction | None:
    """The row of one change key: a retry in another process reads the facts before from it."""
    return _by_key(session, change_key)


def orphans(
    session: Session, *, action: str, target_key: str, summary: str, change_key: str
) -> list[IncidentAction]:
    """Rows of this very change (action, target and summary) left in progress by another change
    key, oldest first. Asked under the workload's lease, so their runs no longer hold it: they
    died between writing the row and completing it, and may or may not have sent the change."""
    return list(
        session.exec(
            select(IncidentAction)
            .where(IncidentAction.action == action)
            .where(IncidentAction.target_key == target_key)
            .where(IncidentAction.summary == summary)
            .where(IncidentAction.status == ActionStatus.IN_PROGRESS)
            .where(IncidentAction.dry_run == False)  # noqa: E712 (SQL, not Python)
            .where(IncidentAction.change_key != change_key)
            .order_by(IncidentAction.started_at)  # type: ignore[arg-type]
        ).all()
    )


def settle_orphan(
    session: Session,
    *,
    change_key: str,
    took_effect: bool,
    after: dict[str, Any],
    revert: dict[str, Any] | None,
    note: str,
    at: datetime | None = None,
) -> IncidentAction | None:
    """Complete a row its run left in progress, from what the cluster shows now: applied when
    the change took effect, failed otherwise. None when another gate settled it first."""
    row = _by_key(session, change_key)
    if row is None or row.status is not ActionStatus.IN_PROGRESS:
        return None
    if not took_effect:
        return fail_action(session, change_key=change_key, error=note, at=at)
    return finish_action(
        session,
        change_key=change_key,
        status=ActionStatus.APPLIED,
        after=after,
        revert=revert,
        note=note,
        at=at,
        verdicts=row.verdicts,
    )


def link_actions(session: Session, *, change_keys: tuple[str, ...], incident_id: int) -> None:
    """Attach actions recorded without an incident (a scenario run on its own) to one."""
    for key in change_keys:
        row = _by_key(session, key)
        if row is not None and row.incident_id is None:
            row.incident_id = incident_id
            session.add(row)
    session.flush()


def count_applied(session: Session, *, incident_id: int, action: str, target_key: str) -> int:
    """How many changes of this kind were applied to this target for the incident (A's restart
    cap: a restart that did not help twice will not help a third time)."""
    rows = session.exec(
        select(IncidentAction)
        .where(IncidentAction.incident_id == incident_id)
        .where(IncidentAction.action == action)
        .where(IncidentAction.target_key == target_key)
        .where(IncidentAction.status == ActionStatus.APPLIED)
        .where(IncidentAction.dry_run == False)  # noqa: E712 (SQL, not Python)
    ).all()
    return len(rows)
