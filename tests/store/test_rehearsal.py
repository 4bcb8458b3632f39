"""The store rehearsal a warm-start forkserver runs before forking (store/rehearsal.py): on SQLite
it leaves nothing behind, not even a skipped incident number, and what a run records first is
compiled already; on PostgreSQL it does nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

from store import incidents
from store.engine import dispose_all, session_for
from store.models import IncidentStatus
from store.rehearsal import rehearse
from store.schema import upgrade
from tests.postgres_plugin import fresh_database

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
# SQLAlchemy's statement log says, of each statement, "[generated in ...]" when it compiled it
# and "[cached since ...]" when it did not have to.
STATEMENT_LOG = "sqlalchemy.engine.Engine"


@pytest.fixture
def postgres_store(postgres_server_url: str) -> Iterator[str]:
    with fresh_database(postgres_server_url) as url:
        upgrade(url)
        yield url
        dispose_all()


def rows_everywhere(url: str) -> dict[str, int]:
    with session_for(url) as session:
        return {
            table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        }


def a_run_records(url: str) -> int:
    """What a triage run records first for a new alert: the incident, the decision."""
    alert = incidents.AlertEvidence(fingerprint="f1", alertname="PodCrashLooping", starts_at=NOW)
    evidence = incidents.Evidence(target_key="pod:alphaswarm/api-1", title="crash", alerts=(alert,))
    with session_for(url) as session:
        incident, _ = incidents.open_or_join(session, evidence=evidence)
        assert incident.id is not None
        incidents.record_decision(
            session,
            incident_id=incident.id,
            decision=incidents.DecisionEvidence(scenario="A", reason="crash loop"),
            target_key="deployment:alphaswarm/api",
        )
        incidents.transition(
            session, incident_id=incident.id, to=IncidentStatus.TRIAGED, summary="triaged"
        )
        return incident.id


def compiled(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "[generated in" in r.getMessage()]


def test_on_sqlite_nothing_stays_and_a_runs_first_records_are_compiled_already(
    incident_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = rows_everywhere(incident_store)

    assert rehearse(incident_store) is True

    assert rows_everywhere(incident_store) == before
    caplog.set_level(logging.INFO, logger=STATEMENT_LOG)
    assert a_run_records(incident_store) == 1  # the first incident is still number 1
    assert any("[cached since" in r.getMessage() for r in caplog.records)
    assert compiled(caplog) == []


def test_without_the_rehearsal_a_runs_first_records_compile_their_statements(
    incident_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=STATEMENT_LOG)
    a_run_records(incident_store)
    assert len(compiled(caplog)) >= 5


def test_on_postgresql_it_does_nothing(postgres_store: str) -> None:
    before = rows_everywhere(postgres_store)

    assert rehearse(postgres_store) is False

    assert rows_everywhere(postgres_store) == before
    assert a_run_records(postgres_store) == 1
