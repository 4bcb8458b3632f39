"""A merged incident's id is never handed out again, on SQLite and PostgreSQL: the id names the
incident's triage run (`triage-incident-<id>`, its idempotency key in the outbox and in Prefect),
so a reused id would leave the new incident without a triage run."""

from __future__ import annotations

import pytest

from store import incidents
from store import intake as ledger
from store.engine import session_for
from tests.store.test_lifecycle import alert, evidence


@pytest.fixture(autouse=True)
def store(any_store: str) -> str:
    return any_store


def test_a_merged_incidents_id_is_not_reused_and_the_next_incident_is_owed_its_run(
    store: str,
) -> None:
    with session_for(store) as s:
        older, _ = incidents.open_or_join(s, evidence=evidence(alert("f1"), key="E:ns/client"))
        newer, _ = incidents.open_or_join(s, evidence=evidence(alert("f2"), key="alert:ns/x"))
        assert older.id is not None and newer.id is not None
        owed = ledger.owe_run(
            s,
            incident_id=newer.id,
            idempotency_key=f"triage-incident-{newer.id}",
            run_name="r",
            parameters={},
        )
        assert owed
        incidents.merge(s, source_id=newer.id, into_id=older.id)  # deletes the newer one
        merged_id = newer.id
    with session_for(store) as s:
        third, _ = incidents.open_or_join(s, evidence=evidence(alert("f3"), key="alert:ns/y"))
        assert third.id is not None and third.id > merged_id
        assert ledger.owe_run(
            s,
            incident_id=third.id,
            idempotency_key=f"triage-incident-{third.id}",
            run_name="r",
            parameters={},
        )
