"""The intake's answers and what it stores, on SQLite and PostgreSQL: no Prefect here (the
outbox keeps the runs owed; tests/intake/test_outbox.py delivers them)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from deployments.intake.app import WEBHOOK_PATH, create_app
from sandbox.alerts import crashloop_alert, webhook
from store.engine import session_for
from store.models import (
    AlertReceipt,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    ReceiptDisposition,
    TriageOutbox,
)
from tasks.triggers.copies import FLUSH_SECONDS
from tests.intake.conftest import running_intake

TOKEN = "s3cret-intake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def store(any_store: str) -> str:
    return any_store


@pytest.fixture
def client(store: str) -> Iterator[httpx.Client]:
    with running_intake(TOKEN) as c:
        yield c


def post(client: httpx.Client, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(WEBHOOK_PATH, json=body, headers=AUTH if headers is None else headers)


def receipts(url: str) -> list[AlertReceipt]:
    with session_for(url) as s:
        return list(s.exec(select(AlertReceipt).order_by(AlertReceipt.id)).all())


def outbox(url: str) -> list[TriageOutbox]:
    with session_for(url) as s:
        return list(s.exec(select(TriageOutbox).order_by(TriageOutbox.id)).all())


def incidents(url: str) -> list[Incident]:
    with session_for(url) as s:
        return list(s.exec(select(Incident).order_by(Incident.id)).all())


def core(pod: str = "alphaswarm-core-7d9f-a", **kw: Any) -> dict[str, Any]:
    return crashloop_alert("alphaswarm", pod, starts_at=kw.pop("starts_at", T0), **kw)


def test_without_the_token_nothing_is_stored(client: httpx.Client, store: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = post(client, webhook([core()]), headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in answer.json()["error"]
    assert receipts(store) == [] and incidents(store) == []


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda b: b.update(version="3"), "version is '3'"),
        (lambda b: b.pop("alerts"), "alerts: missing"),
        (lambda b: b["alerts"][0].pop("startsAt"), "alerts[0].startsAt: missing"),
        (lambda b: b["alerts"][0].update(status="pending"), "alerts[0].status"),
        (lambda b: b["alerts"][0].update(labels="x"), "alerts[0].labels"),
    ],
)
def test_a_bad_payload_is_a_4xx_naming_the_field(
    client: httpx.Client, store: str, mutate: Any, names: str
) -> None:
    body = webhook([core()])
    mutate(body)
    answer = post(client, body)
    assert answer.status_code == 422
    assert names in answer.json()["error"]
    assert receipts(store) == []


def test_not_json_is_a_4xx(client: httpx.Client, store: str) -> None:
    answer = client.post(WEBHOOK_PATH, content=b"{not json", headers=AUTH)
    assert answer.status_code == 422
    assert "not JSON" in answer.json()["error"]


def test_unknown_keys_are_accepted(client: httpx.Client, store: str) -> None:
    body = webhook([core() | {"somethingNew": 1}]) | {"routeLabels": {"a": "b"}, "future": [1]}
    assert post(client, body).status_code == 200


def copies_written(url: str, expected: int) -> AlertReceipt:
    """The one receipt, once the copy writer (a write a second) has counted `expected` copies."""
    deadline = time.monotonic() + 10 * FLUSH_SECONDS
    while True:
        (receipt,) = receipts(url)
        if receipt.copies == expected or time.monotonic() > deadline:
            return receipt
        time.sleep(0.05)


def test_copies_are_counted_and_start_one_run(client: httpx.Client, store: str) -> None:
    body = webhook([core()])
    answers = [post(client, body).json() for _ in range(5)]
    assert [a["accepted"] for a in answers] == [1, 0, 0, 0, 0]
    assert [a["duplicates"] for a in answers] == [0, 1, 1, 1, 1]
    assert [a["runs_queued"] for a in answers] == [1, 0, 0, 0, 0]
    receipt = copies_written(store, 4)
    assert receipt.copies == 4 and receipt.disposition is ReceiptDisposition.INCIDENT
    (owed,) = outbox(store)
    (incident,) = incidents(store)
    assert owed.incident_id == incident.id and receipt.incident_id == incident.id
    assert owed.parameters["dry_run"] is False  # the intake applies unless told not to
    assert owed.parameters["alerts"]["alerts"][0]["fingerprint"] == body["alerts"][0]["fingerprint"]


def test_a_restarted_intake_tells_copies_from_the_store(store: str) -> None:
    """A new intake process remembers nothing: it reads which alerts are stored."""
    first, second = core(), core("alphaswarm-core-7d9f-b")
    with running_intake(TOKEN) as client:
        assert post(client, webhook([first])).json()["accepted"] == 1
    with running_intake(TOKEN) as client:
        copy = post(client, webhook([first])).json()
        assert (copy["accepted"], copy["duplicates"]) == (0, 1)
        both = post(client, webhook([first, second])).json()  # one new: written, whole
        assert (both["accepted"], both["duplicates"]) == (1, 1)
    by_pod = {r.labels["pod"]: r.copies for r in receipts(store)}
    assert by_pod == {"alphaswarm-core-7d9f-a": 2, "alphaswarm-core-7d9f-b": 0}


def test_copies_are_answered_while_a_writer_holds_the_lock_and_new_alerts_wait(
    incident_store: str,
) -> None:
    """Under a storm the starting runs hold SQLite's write lock in turns: a copy is answered
    from a read meanwhile, a payload with a new alert waits for the lock, and the copies stay
    answered while it waits."""
    stored, fresh = webhook([core()]), webhook([core(), core("alphaswarm-core-7d9f-b")])
    with running_intake(TOKEN) as client:
        assert post(client, stored).json()["accepted"] == 1
    with running_intake(TOKEN) as client:  # a new intake remembers nothing: it reads the store
        writer = sqlite3.connect(incident_store.removeprefix("sqlite:///"), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a run's records, holding the write lock
        try:
            with (
                httpx.Client(base_url=client.base_url, headers=AUTH) as other,
                pytest.raises(httpx.ReadTimeout),
            ):
                other.post(WEBHOOK_PATH, json=fresh, timeout=1.0)
            copy = post(client, stored)  # while the fresh payload still waits for the lock
            assert copy.status_code == 200 and copy.json()["duplicates"] == 1
        finally:
            writer.execute("COMMIT")
            writer.close()
        again = post(client, fresh).json()  # the waiting one is stored, once
        assert again["duplicates"] == 2 and again["accepted"] == 0
    # The copy writer writes what it holds when the intake stops.
    by_pod = {r.labels["pod"]: r.copies for r in receipts(incident_store)}
    assert by_pod == {"alphaswarm-core-7d9f-a": 3, "alphaswarm-core-7d9f-b": 1}


def test_a_firing_alert_that_starts_again_is_a_new_receipt_joining_the_open_incident(
    client: httpx.Client, store: str
) -> None:
    post(client, webhook([core()]))
    again = post(client, webhook([core(starts_at=T0 + timedelta(minutes=10))])).json()
    assert again["accepted"] == 1 and again["runs_queued"] == 0
    assert len(incidents(store)) == 1 and len(outbox(store)) == 1


def test_a_grouped_payload_is_split_per_alert_and_joined_per_incident(
    client: httpx.Client, store: str
) -> None:
    body = webhook(
        [
            core("alphaswarm-core-h84rzk9bqs-2fb6l"),
            core("alphaswarm-core-h84rzk9bqs-4n977"),
            crashloop_alert("alphaswarm", "alphaswarm-worker-cxcv5ww8cf-8wfc2", starts_at=T0),
        ]
    )
    answer = post(client, body).json()
    assert answer["accepted"] == 3
    # the two core pods are one incident (their Deployment's), the worker pod another
    assert len(answer["incidents"]) == len(incidents(store)) == 2
    assert answer["runs_queued"] == 2
    by_incident = {r.fingerprint: r.incident_id for r in receipts(store)}
    core_a, core_b, worker = (a["fingerprint"] for a in body["alerts"])
    assert by_incident[core_a] == by_incident[core_b] != by_incident[worker]
    (owed_core,) = [o for o in outbox(store) if o.incident_id == by_incident[core_a]]
    assert len(owed_core.parameters["alerts"]["alerts"]) == 2  # triage sees both pods


def test_resolved_alerts_close_their_incident_and_start_nothing(
    client: httpx.Client, store: str
) -> None:
    post(client, webhook([core()]))
    resolved = core(status="resolved", ends_at=T0 + timedelta(minutes=5))
    answer = post(client, webhook([resolved])).json()
    assert answer["runs_queued"] == 0 and answer["accepted"] == 1
    (incident,) = incidents(store)
    assert incident.status is IncidentStatus.RESOLVED
    assert len(outbox(store)) == 1  # only the firing one's run


def test_a_resolved_alert_of_no_incident_is_stored_unmatched(
    client: httpx.Client, store: str
) -> None:
    answer = post(client, webhook([core(status="resolved")])).json()
    assert answer["incidents"] == []
    (receipt,) = receipts(store)
    assert receipt.disposition is ReceiptDisposition.UNMATCHED
    assert incidents(store) == []


def test_alerts_outside_the_namespaces_are_stored_as_ignored_and_the_answer_says_so(
    client: httpx.Client, store: str
) -> None:
    body = webhook([crashloop_alert("kube-system", "coredns-1", starts_at=T0), core()])
    answer = post(client, body).json()
    assert answer["accepted"] == 2 and len(answer["ignored"]) == 1
    assert "kube-system" in answer["ignored"][0] and "ignored" in answer["message"]
    ignored = [r for r in receipts(store) if r.disposition is ReceiptDisposition.IGNORED]
    assert len(ignored) == 1 and "outside the configured namespaces" in ignored[0].reason
    assert len(incidents(store)) == 1


def test_a_truncated_group_is_noted_on_the_incident(client: httpx.Client, store: str) -> None:
    answer = post(client, webhook([core()], truncated=7)).json()
    assert answer["truncated"] == 7
    with session_for(store) as s:
        notes = s.exec(select(IncidentEvent).where(IncidentEvent.kind == EventKind.NOTE)).all()
    assert any("left 7 alert(s) out" in n.summary for n in notes)


def test_a_store_that_cannot_take_the_alerts_is_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_STORE__URL", f"sqlite:///{tmp_path}/unmigrated.db")
    with running_intake(TOKEN) as client:
        answer = post(client, webhook([core()]))
        assert answer.status_code == 503 and "retry" in answer.json()["error"]
        assert client.get("/healthz").status_code == 503


def test_health_metrics_and_openapi(client: httpx.Client, store: str) -> None:
    post(client, webhook([core()]))
    post(client, webhook([core()]))
    post(client, webhook([core()]), {})
    assert client.get("/healthz").json() == {"status": "ok", "outbox_pending": 1}
    text = client.get("/metrics").text
    assert "remediate_intake_alerts_accepted_total 1.0" in text
    assert "remediate_intake_alerts_duplicate_total 1.0" in text
    assert 'remediate_intake_payloads_rejected_total{reason="unauthorized"} 1.0' in text
    assert "remediate_intake_outbox_pending 1.0" in text
    spec = client.get("/openapi.json").json()
    body = spec["paths"][WEBHOOK_PATH]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/AlertmanagerPayload")
    assert "fingerprint" in spec["components"]["schemas"]["Alert"]["required"]


def test_the_intake_refuses_to_run_without_a_token() -> None:
    with pytest.raises(ValueError, match="REMEDIATE_INTAKE_TOKEN"):
        create_app("")


def test_a_hostile_version_is_refused_without_being_echoed(
    client: httpx.Client, store: str
) -> None:
    body = webhook([core()]) | {"version": {"\x1f" * 3000: "\u0600" * 3000}}
    answer = post(client, body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error.startswith("not an Alertmanager v4 payload: version is") and len(error) <= 500


@pytest.mark.parametrize(("set_to", "row_says"), [(None, "unknown"), ("production", "production")])
def test_the_incident_row_names_the_environment_and_never_assumes_dev(
    store: str, monkeypatch: pytest.MonkeyPatch, set_to: str | None, row_says: str
) -> None:
    """REMEDIATE_ENVIRONMENT unset: the row says `unknown`, not dev (which a flow run reading
    it would take for leave to delete a Postgres pod)."""
    if set_to is None:
        monkeypatch.delenv("REMEDIATE_ENVIRONMENT", raising=False)
    else:
        monkeypatch.setenv("REMEDIATE_ENVIRONMENT", set_to)
    with running_intake(TOKEN) as client:
        assert post(client, webhook([core()])).status_code == 200
    (incident,) = incidents(store)
    assert incident.environment == row_says
