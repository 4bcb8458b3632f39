"""What the gate's guards remember across processes and restarts: a lease per target (one run
changes a target at a time) and the audit rows of the changes already made (cooldown, circuit
breaker and hourly budget are counted from them, so there is no second ledger to drift)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.models import ActionStatus, IncidentAction, TargetLease
from store.types import utcnow


def take_lease(session: Session, *, target_key: str, holder: str, seconds: float) -> bool:
    """Take the target's lease for `holder` (again, if it holds it already); False while
    another holder's lease runs. An expired lease is taken over: its holder died."""
    now = utcnow()
    session.exec(
        delete(TargetLease)
        .where(col(TargetLease.target_key) == target_key)
        .where((col(TargetLease.expires_at) < now) | (col(TargetLease.holder) == holder))
    )
    try:
        with session.begin_nested():
            session.add(
                TargetLease(
                    target_key=target_key,
                    holder=holder,
                    acquired_at=now,
                    expires_at=now + timedelta(seconds=seconds),
                )
            )
    except IntegrityError:
        return False
    return True


def release_lease(session: Session, *, target_key: str, holder: str) -> None:
    session.exec(
        delete(TargetLease)
        .where(col(TargetLease.target_key) == target_key)
        .where(col(TargetLease.holder) == holder)
    )


def _applied_since(
    query: Any,
    since: datetime,
    action: str | None,
    target_key: str | None,
    summary: str | None = None,
) -> Any:
    """`query` narrowed to the changes that took effect since `since` (not dry runs), of this
    action, target and summary where given."""
    query = (
        query.where(col(IncidentAction.status) == ActionStatus.APPLIED)
        .where(col(IncidentAction.dry_run).is_(False))
        .where(col(IncidentAction.finished_at) >= since)
    )
    if action is not None:
        query = query.where(col(IncidentAction.action) == action)
    if target_key is not None:
        query = query.where(col(IncidentAction.target_key) == target_key)
    if summary is not None:
        query = query.where(col(IncidentAction.summary) == summary)
    return query


def last_applied_since(
    session: Session, since: datetime, *, action: str, target_key: str, summary: str
) -> IncidentAction | None:
    """The newest change that took effect since `since` and was exactly this one: the
    cooldown's evidence."""
    query = _applied_since(select(IncidentAction), since, action, target_key, summary)
    found: IncidentAction | None = session.exec(
        query.order_by(col(IncidentAction.finished_at).desc())
    ).first()
    return found


def count_applied_since(
    session: Session, since: datetime, *, action: str | None = None, target_key: str | None = None
) -> int:
    """Changes that took effect since `since`: of one kind to one target (the circuit
    breaker's count), or anywhere (the cluster-wide budget's)."""
    query = _applied_since(
        select(func.count()).select_from(IncidentAction), since, action, target_key
    )
    return int(session.exec(query).one())
