"""Alertmanager's resolved notification, for tests that deliver hand-made firing payloads.

An incident resolves only once its fix held on the cluster AND its alerts resolved
(`store.lifecycle`). With a real Prometheus and Alertmanager in front of the intake the resolved
notification comes by itself (tests/monitoring/); a test that posts its own firing payload has
no Prometheus to see the symptom gone, so this thread plays that part: once the triage run's
hold has seen the fix hold (`held_at`), it sends the incident's alerts resolved through the
intake's own door, as Alertmanager would a few evaluations later. It never resolves an alert of
an incident whose fix has not held, so a test still fails when the fix does not hold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr
from sqlmodel import col, select

from store.engine import session_for
from store.models import Incident, IncidentAlert, IncidentStatus
from store.types import utcnow
from tasks.models.alerts import AlertBatch
from tasks.settings import Settings, Store
from tasks.triggers.intake import receive

POLL_SECONDS = 0.05


@contextmanager
def resolving_held_incidents(url: str) -> Iterator[None]:
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(POLL_SECONDS):
            try:
                send_resolved(url)
            except Exception:
                continue

    thread = threading.Thread(target=loop, name="alertmanager-stand-in", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def send_resolved(url: str) -> int:
    """Resolve the firing alerts of every held incident; how many were sent."""
    with session_for(url, read_only=True) as session:
        rows = session.exec(
            select(IncidentAlert)
            .join(Incident, col(Incident.id) == col(IncidentAlert.incident_id))
            .where(col(Incident.status) == IncidentStatus.VERIFIED)
            .where(col(Incident.held_at).is_not(None))
            .where(col(IncidentAlert.status) != "resolved")
        ).all()
        alerts = [
            {
                "status": "resolved",
                "labels": row.labels,
                "annotations": row.annotations,
                "startsAt": row.starts_at.isoformat(),
                "endsAt": utcnow().isoformat(),
                "generatorURL": row.generator_url,
                "fingerprint": row.fingerprint,
            }
            for row in rows
        ]
    if alerts:  # into this store, whichever this process's settings name (a stack's own)
        settings = Settings().model_copy(update={"store": Store(url=SecretStr(url))})
        receive(
            AlertBatch.model_validate(
                {"version": "4", "status": "resolved", "receiver": "stand-in", "alerts": alerts}
            ),
            settings=settings,
        )
    return len(alerts)
