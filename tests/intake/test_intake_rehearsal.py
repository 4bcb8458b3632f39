"""The intake's rehearsal at start (tasks/triggers/intake.py `rehearse`): on SQLite it leaves
nothing behind, and the first payload finds its statements compiled, so its write holds the lock
for milliseconds while an alert storm's copies of it wait; on PostgreSQL it does nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from sandbox.alerts import crashloop_alert, webhook
from tasks.models.alerts import AlertBatch
from tasks.settings import Settings
from tasks.triggers.intake import receive, rehearse
from tests.store.test_rehearsal import STATEMENT_LOG, compiled, postgres_store, rows_everywhere

__all__ = ["postgres_store"]  # the fixture, shared with the store's rehearsal tests

T0 = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)


def first_payload() -> AlertBatch:
    alert = crashloop_alert("alphaswarm", "alphaswarm-core-7d9f-a", starts_at=T0)
    return AlertBatch.model_validate(webhook([alert], truncated=2))


def test_on_sqlite_nothing_stays_and_the_first_payload_is_compiled_already(
    incident_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = rows_everywhere(incident_store)

    assert rehearse(Settings()) is True

    assert rows_everywhere(incident_store) == before
    caplog.set_level(logging.INFO, logger=STATEMENT_LOG)
    receipt = receive(first_payload())
    assert receipt.incidents_opened == (1,) and receipt.runs_owed == (1,)
    assert any("[cached since" in r.getMessage() for r in caplog.records)
    assert compiled(caplog) == []


def test_without_the_rehearsal_the_first_payload_compiles_its_statements(
    incident_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=STATEMENT_LOG)
    receive(first_payload())
    assert len(compiled(caplog)) >= 5


def test_on_postgresql_it_does_nothing(
    postgres_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_STORE__URL", postgres_store)
    before = rows_everywhere(postgres_store)

    assert rehearse(Settings()) is False

    assert rows_everywhere(postgres_store) == before
    assert receive(first_payload()).incidents_opened == (1,)
