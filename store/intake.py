"""The intake's ledger: each accepted alert once (`alert_receipt`) and the triage runs owed to
incidents (`triage_outbox`). Keyword-only data functions that take the session explicitly.

    POST ──► claim each alert ──► new? join or open its incident ──► opened? owe a triage run
                 └─ a copy: counted, nothing else                       └─ outbox row, same
                                                                           transaction
    outbox ──► due rows ──► Prefect API (idempotency key) ──► delivered, or retried later

A copy is recognised by the database itself (a unique key: an UPDATE counting the copy finds
the stored receipt, else INSERT ... ON CONFLICT DO NOTHING stores it), so two intake replicas
racing on one alert store it once, whichever wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from store.models import (
    AlertReceipt,
    Incident,
    IncidentStatus,
    ReceiptDisposition,
    TriageOutbox,
)
from store.types import utcnow

# An alert's identity in the ledger: (fingerprint, status, starts_at).
Identity = tuple[str, str, datetime]

# Redelivery backs off from one second up to this, so a Prefect outage costs little.
OUTBOX_LONGEST_BACKOFF_SECONDS = 30.0


_receipts: Table = AlertReceipt.__table__  # type: ignore[attr-defined]
# Built once: a storm is mostly copies, and this is all a copy costs (one indexed UPDATE).
_COUNT_COPY = (
    update(_receipts)
    .where(
        and_(
            _receipts.c.fingerprint == bindparam("the_fingerprint"),
            _receipts.c.status == bindparam("the_status"),
            _receipts.c.starts_at == bindparam("the_starts_at"),
        )
    )
    .values(copies=_receipts.c.copies + bindparam("more"))
)
_STORED = (
    select(func.count())
    .select_from(_receipts)
    .where(
        tuple_(_receipts.c.fingerprint, _receipts.c.status, _receipts.c.starts_at).in_(
            bindparam("identities", expanding=True)
        )
    )
)


def all_stored(session: Session, identities: Iterable[Identity]) -> bool:
    """Whether every one of these alerts has a receipt already: one read, no lock taken."""
    wanted = list(set(identities))
    found = session.connection().execute(_STORED, {"identities": wanted}).scalar()
    return found == len(wanted)


def count_copies(session: Session, seen: Mapping[Identity, int]) -> None:
    """Add copies counted elsewhere (the intake's read-only path) to their receipts."""
    session.connection().execute(
        _COUNT_COPY, [_copies_of(identity, more) for identity, more in seen.items()]
    )


def count_copy(session: Session, *, fingerprint: str, status: str, starts_at: datetime) -> bool:
    """Count one more copy of the stored receipt with this identity; False: none is stored.
    Under a storm nearly every alert is a copy: ask this first, and build a receipt only when
    it is not."""
    copy = _copies_of((fingerprint, status, starts_at), 1)
    return bool(session.connection().execute(_COUNT_COPY, copy).rowcount)


def _copies_of(identity: Identity, more: int) -> dict[str, Any]:
    """`_COUNT_COPY`'s parameters: `more` copies of the receipt with this identity."""
    fingerprint, status, starts_at = identity
    return {
        "the_fingerprint": fingerprint,
        "the_status": status,
        "the_starts_at": starts_at,
        "more": more,
    }


def claim(session: Session, *, receipt: AlertReceipt) -> bool:
    """Store the receipt and return True, or count one more copy of the stored one and return
    False: the same (fingerprint, status, startsAt) was accepted before."""
    values = receipt.model_dump(exclude={"id"})
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(AlertReceipt)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(col(AlertReceipt.id))
    )
    if session.exec(statement).first() is not None:
        return True
    count_copy(
        session,
        fingerprint=receipt.fingerprint,
        status=receipt.status,
        starts_at=receipt.starts_at,
    )
    return False


def _the_one(fingerprint: str, status: str, starts_at: datetime) -> Any:
    """An UPDATE of the receipt with this identity."""
    return (
        update(AlertReceipt)
        .where(col(AlertReceipt.fingerprint) == fingerprint)
        .where(col(AlertReceipt.status) == status)
        .where(col(AlertReceipt.starts_at) == starts_at)
    )


def settle(
    session: Session,
    *,
    fingerprint: str,
    status: str,
    starts_at: datetime,
    disposition: ReceiptDisposition,
    incident_id: int | None = None,
    reason: str = "",
) -> None:
    """Say what became of a claimed alert: the incident it joined, or why it started nothing."""
    session.exec(
        _the_one(fingerprint, status, starts_at).values(
            disposition=disposition, incident_id=incident_id, reason=reason
        )
    )


def owe_run(
    session: Session,
    *,
    incident_id: int,
    idempotency_key: str,
    run_name: str,
    parameters: dict[str, Any],
) -> bool:
    """Owe the incident its triage run, once: False when it is owed (or was delivered) already."""
    known = session.exec(
        select(TriageOutbox.id).where(TriageOutbox.idempotency_key == idempotency_key)
    ).first()
    if known is not None:
        return False
    now = utcnow()
    session.add(
        TriageOutbox(
            idempotency_key=idempotency_key,
            incident_id=incident_id,
            run_name=run_name,
            parameters=parameters,
            created_at=now,
            next_attempt_at=now,
        )
    )
    session.flush()
    return True


def due(session: Session, *, limit: int, now: datetime | None = None) -> list[TriageOutbox]:
    """Undelivered rows whose next attempt is due, oldest first."""
    return list(
        session.exec(
            select(TriageOutbox)
            .where(col(TriageOutbox.delivered_at).is_(None))
            .where(col(TriageOutbox.next_attempt_at) <= (now or utcnow()))
            .order_by(col(TriageOutbox.id))
            .limit(limit)
        ).all()
    )


def delivered(session: Session, *, row: TriageOutbox, flow_run_id: str) -> None:
    """The run exists: the row is done, and the incident names its triage run."""
    session.exec(
        update(TriageOutbox)
        .where(col(TriageOutbox.id) == row.id)
        .values(delivered_at=utcnow(), flow_run_id=flow_run_id, last_error="")
    )
    session.exec(
        update(Incident)
        .where(col(Incident.id) == row.incident_id)
        .where(col(Incident.triage_flow_run_id).is_(None))
        .values(triage_flow_run_id=flow_run_id)
    )


def failed(session: Session, *, row_id: int, attempts: int, error: str) -> None:
    """Keep the row for later: 1 s, 2 s, 4 s ... up to OUTBOX_LONGEST_BACKOFF_SECONDS."""
    backoff = min(2.0 ** max(attempts - 1, 0), OUTBOX_LONGEST_BACKOFF_SECONDS)
    session.exec(
        update(TriageOutbox)
        .where(col(TriageOutbox.id) == row_id)
        .values(
            attempts=attempts,
            last_error=error[:500],
            next_attempt_at=utcnow() + timedelta(seconds=backoff),
        )
    )


def pending_count(session: Session) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(TriageOutbox)
            .where(col(TriageOutbox.delivered_at).is_(None))
        ).one()
    )


# Retention (REMEDIATE_INTAKE__RETENTION_DAYS): rows are deleted in batches of this many, each
# batch its own short transaction, so a first purge of a large table never holds SQLite's write
# lock (and with it the intake's answers) for long.
PURGE_BATCH = 500


def purge_receipts(session: Session, *, before: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to `limit` receipts received before `before`; how many. A receipt of an
    incident still open is kept whatever its age: its alert may still be re-sent (every
    repeat_interval while it fires) and must stay a copy, not a new alert."""
    still_open = select(Incident.id).where(col(Incident.status) != IncidentStatus.RESOLVED)
    expired = (
        select(AlertReceipt.id)
        .where(col(AlertReceipt.received_at) < before)
        .where(
            or_(
                col(AlertReceipt.incident_id).is_(None),
                col(AlertReceipt.incident_id).not_in(still_open),
            )
        )
        .order_by(col(AlertReceipt.id))
        .limit(limit)
    )
    return _delete_ids(session, AlertReceipt, list(session.exec(expired).all()))


def purge_delivered(session: Session, *, before: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to `limit` outbox rows delivered before `before`; how many. An undelivered row
    is never deleted, however old: it is a triage run still owed."""
    expired = (
        select(TriageOutbox.id)
        .where(col(TriageOutbox.delivered_at).is_not(None))
        .where(col(TriageOutbox.delivered_at) < before)
        .order_by(col(TriageOutbox.id))
        .limit(limit)
    )
    return _delete_ids(session, TriageOutbox, list(session.exec(expired).all()))


def _delete_ids(session: Session, table: Any, ids: list[int | None]) -> int:
    if not ids:
        return 0
    session.exec(delete(table).where(col(table.id).in_(ids)))
    return len(ids)
