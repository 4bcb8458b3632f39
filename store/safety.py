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

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, func, null, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from store.models import ActionStatus, IncidentAction, TargetLease
from store.types import utcnow

_leases: Table = TargetLease.__table__  # type: ignore[attr-defined]


def take_lease(session: Session, *, target_key: str, holder: str, seconds: float) -> bool:
    """Take the target's lease for `holder` (again, if it holds it already); False while
    another holder's lease runs. An expired lease is taken over: its holder died.

    One statement: an insert that, when the row exists, overwrites it only if it is this
    holder's or expired, and returns the row only if it wrote it (the unique key decides
    between two takers at once; PostgreSQL makes the second wait for the first's commit, then
    re-checks the row)."""
    now = utcnow()
    table = _leases
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {
        "target_key": target_key,
        "holder": holder,
        "acquired_at": now,
        "expires_at": now + timedelta(seconds=seconds),
    }
    statement = (
        insert(table)
        .values(values)
        .on_conflict_do_update(
            index_elements=[table.c.target_key],
            set_={k: v for k, v in values.items() if k != "target_key"},
            where=(table.c.expires_at < now) | (table.c.holder == holder),
        )
    )
    return session.connection().execute(statement.returning(table.c.holder)).first() is not None


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
    keys = sorted(set(target_keys))
    if len(keys) == 1:  # nothing to undo when the one take fails
        return take_lease(session, target_key=keys[0], holder=holder, seconds=seconds)
    try:
        with session.begin_nested():
            for key in keys:
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


@dataclass(frozen=True)
class History:
    """What the cooldown, the circuit breaker and the budget count, read at once."""

    budget: int  # changes that took effect in the budget's window, and those being sent now
    same_target: int  # of this action to this target, in the breaker's window
    last_same: IncidentAction | None  # this very change, newest, in the cooldown's window


def history(
    session: Session,
    *,
    action: str,
    target_key: str,
    summary: str,
    budget_since: datetime,
    breaker_since: datetime,
    cooldown_since: datetime | None = None,
) -> History:
    """One query over the audit rows for the three guards that count them: the budget (changes
    that took effect since `budget_since`, and those that passed their limits and are being
    sent now: reserved, still in progress; a run killed mid-change keeps its slot until its row
    is settled), the circuit breaker (this action to this target since `breaker_since`) and the
    cooldown (this very change, same summary, since `cooldown_since`; its newest row is read
    only when there is one). Dry runs never count."""
    a = IncidentAction
    applied = col(a.status) == ActionStatus.APPLIED
    reserved = (col(a.status) == ActionStatus.IN_PROGRESS) & (col(a.reserved_at) >= budget_since)
    same = (col(a.action) == action) & (col(a.target_key) == target_key)
    finished = col(a.finished_at)
    earliest = min(budget_since, breaker_since, cooldown_since or budget_since)

    def count(condition: Any) -> Any:
        return func.count(case((condition, 1)))

    last = (
        func.max(
            case(
                (
                    applied & same & (col(a.summary) == summary) & (finished >= cooldown_since),
                    finished,
                )
            )
        )
        if cooldown_since is not None
        else null()
    )
    query = (
        select(
            count(applied & (finished >= budget_since)) + count(reserved),
            count(applied & same & (finished >= breaker_since)),
            last,
        )
        .select_from(a)
        .where(col(a.dry_run).is_(False))
        .where((applied & (finished >= earliest)) | reserved)
    )
    budget, same_target, last_at = session.exec(query).one()
    last_same: IncidentAction | None = None
    if last_at is not None and cooldown_since is not None:
        last_same = session.exec(
            select(a)
            .where(applied, same, col(a.summary) == summary, col(a.dry_run).is_(False))
            .where(finished >= cooldown_since)
            .order_by(finished.desc())
        ).first()
    return History(budget=int(budget), same_target=int(same_target), last_same=last_same)
