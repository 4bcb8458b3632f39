"""What the gate's guards remember across processes and restarts: a lease per workload (one run
changes a workload at a time, from its change through its verification) and the audit rows of
the changes already made (cooldown, circuit breaker and hourly budget are counted from them, so
there is no second ledger to drift).

The hourly budget is counted and spent in one serialised unit of work (`budget_lock`: on
PostgreSQL a transaction-scoped advisory lock, on SQLite the write lock every writing unit of
work takes): a change that passes reserves its slot on its own audit row before it is sent, and
the next gate counts the reserved rows still in progress with the applied ones, so N workers
at once never spend more than the budget."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, text, update
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


class _Taken(Exception):
    """One of the leases is another holder's: the savepoint is rolled back."""


def take_leases(
    session: Session, *, target_keys: tuple[str, ...], holder: str, seconds: float
) -> bool:
    """Take every lease in `target_keys` for `holder`, or none of them (False while another
    holder's lease runs on any): a change that moves two workloads holds both."""
    try:
        with session.begin_nested():
            for key in sorted(set(target_keys)):
                if not take_lease(session, target_key=key, holder=holder, seconds=seconds):
                    raise _Taken(key)
    except _Taken:
        return False
    return True


def release_leases(session: Session, *, target_keys: tuple[str, ...], holder: str) -> None:
    for key in set(target_keys):
        release_lease(session, target_key=key, holder=holder)


def extend_leases(
    session: Session, *, target_keys: tuple[str, ...], holder: str, seconds: float
) -> None:
    """Keep `holder`'s leases for `seconds` from now (a change sent: through its verification)."""
    session.exec(
        update(TargetLease)
        .where(col(TargetLease.target_key).in_(set(target_keys)))
        .where(col(TargetLease.holder) == holder)
        .values(expires_at=utcnow() + timedelta(seconds=seconds))
    )


def lease_holders(session: Session, *, target_keys: tuple[str, ...]) -> dict[str, str]:
    """Who holds each of these leases now (expired ones left out)."""
    rows = session.exec(
        select(TargetLease)
        .where(col(TargetLease.target_key).in_(set(target_keys)))
        .where(col(TargetLease.expires_at) >= utcnow())
    ).all()
    return {row.target_key: row.holder for row in rows}


def end_leases_of(session: Session, *, holder: str) -> None:
    """Drop every lease `holder` has (its flow run has ended: nothing of it is left to verify)."""
    session.exec(delete(TargetLease).where(col(TargetLease.holder) == holder))


BUDGET_LOCK_ID = 0x72656D65  # "reme": the one advisory lock the budget is spent under


def budget_lock(session: Session) -> None:
    """Serialise the budget's count and spend until this unit of work ends. On PostgreSQL a
    transaction-scoped advisory lock (released at commit, rollback or a dropped connection); on
    SQLite every writing unit of work already holds the write lock (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": BUDGET_LOCK_ID}
        )


def reserve(session: Session, *, change_key: str) -> bool:
    """The change passed its limits: its in-progress audit row holds a slot of the budget. False
    when there is no such row (a gate without an audit)."""
    result = session.exec(
        update(IncidentAction)
        .where(col(IncidentAction.change_key) == change_key)
        .where(col(IncidentAction.status) == ActionStatus.IN_PROGRESS)
        .values(reserved_at=utcnow())
    )
    return bool(result.rowcount)


def count_budget(session: Session, since: datetime) -> int:
    """What the cluster-wide budget has spent since `since`: the changes that took effect, and
    those that passed their limits and are being sent now (reserved, still in progress; a run
    killed mid-change keeps its slot until its row is settled)."""
    reserved = (
        select(func.count())
        .select_from(IncidentAction)
        .where(col(IncidentAction.status) == ActionStatus.IN_PROGRESS)
        .where(col(IncidentAction.dry_run).is_(False))
        .where(col(IncidentAction.reserved_at) >= since)
    )
    return count_applied_since(session, since) + int(session.exec(reserved).one())


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
