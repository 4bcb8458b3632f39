"""Retention of the intake's ledger (issue 21, point 10), on SQLite and PostgreSQL: alert
receipts and delivered outbox rows past REMEDIATE_INTAKE__RETENTION_DAYS are deleted; an
undelivered outbox row (a run still owed) never is, nor the receipt of an incident still open.
And the intake runs it: at start, then hourly."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from store import intake as ledger
from store.engine import session_for
from store.models import AlertReceipt, Incident, IncidentStatus, TriageOutbox
from store.types import utcnow
from tasks.settings import Settings
from tasks.triggers.intake import purge_expired
from tests.intake.conftest import running_intake

DAY = timedelta(days=1)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(any_store: str) -> str:
    return any_store


def incident(url: str, key: str, status: IncidentStatus) -> int:
    with session_for(url) as s:
        row = Incident(
            title=key,
            target_key=key,
            status=status,
            open_key=None if status is IncidentStatus.RESOLVED else key,
            started_at=NOW - 90 * DAY,
            opened_at=NOW - 90 * DAY,
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def receipt(url: str, name: str, age: timedelta, incident_id: int | None = None) -> None:
    with session_for(url) as s:
        s.add(
            AlertReceipt(
                fingerprint=name,
                status="firing",
                starts_at=NOW - age,
                alertname=name,
                incident_id=incident_id,
                received_at=NOW - age,
            )
        )


def outbox_row(url: str, key: str, age: timedelta, *, delivered: bool) -> None:
    with session_for(url) as s:
        s.add(
            TriageOutbox(
                idempotency_key=key,
                created_at=NOW - age,
                next_attempt_at=NOW - age,
                delivered_at=NOW - age if delivered else None,
            )
        )


def left(url: str) -> tuple[set[str], set[str]]:
    with session_for(url, read_only=True) as s:
        receipts = {r.fingerprint for r in s.exec(select(AlertReceipt)).all()}
        outbox = {o.idempotency_key for o in s.exec(select(TriageOutbox)).all()}
    return receipts, outbox


def test_old_receipts_and_delivered_rows_go_owed_runs_and_open_incidents_stay(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_INTAKE__RETENTION_DAYS", "30")
    resolved = incident(store, "ns/resolved", IncidentStatus.RESOLVED)
    still_open = incident(store, "ns/open", IncidentStatus.ESCALATED)
    receipt(store, "old-ignored", 31 * DAY)
    receipt(store, "old-resolved", 45 * DAY, resolved)
    receipt(store, "old-of-open-incident", 60 * DAY, still_open)
    receipt(store, "recent", 29 * DAY, resolved)
    outbox_row(store, "old-delivered", 31 * DAY, delivered=True)
    outbox_row(store, "old-owed", 90 * DAY, delivered=False)
    outbox_row(store, "recent-delivered", 1 * DAY, delivered=True)

    purged = purge_expired(now=NOW)

    assert (purged.receipts, purged.outbox) == (2, 1)
    assert left(store) == (
        {"old-of-open-incident", "recent"},
        {"old-owed", "recent-delivered"},
    )
    assert purge_expired(now=NOW) == type(purged)()  # nothing more: it is idempotent


def test_more_than_one_batch_is_deleted(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "PURGE_BATCH", 3)
    for n in range(7):
        receipt(store, f"old-{n}", 40 * DAY)
        outbox_row(store, f"old-{n}", 40 * DAY, delivered=True)
    purged = purge_expired(now=NOW)
    assert (purged.receipts, purged.outbox) == (7, 7)
    assert left(store) == (set(), set())


def test_the_retention_is_a_setting_30_days_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_INTAKE__RETENTION_DAYS", raising=False)
    assert Settings().intake.retention_days == 30
    monkeypatch.setenv("REMEDIATE_INTAKE__RETENTION_DAYS", "7")
    assert Settings().intake.retention_days == 7


def test_the_intake_purges_at_start(store: str) -> None:
    now = utcnow()
    with session_for(store) as s:
        s.add(
            AlertReceipt(
                fingerprint="ancient",
                status="firing",
                starts_at=now - 400 * DAY,
                received_at=now - 400 * DAY,
            )
        )
    with running_intake("s3cret-intake-token") as client:
        deadline = time.monotonic() + 10
        while left(store)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").status_code == 200
    assert left(store)[0] == set()
