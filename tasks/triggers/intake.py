"""What an alert payload becomes, before anyone answers Alertmanager: each alert claimed once,
joined to its incident, and a triage run owed to each incident that has none.

    receive(batch)
      ├─ a copy (same fingerprint, status, startsAt): counted, nothing more
      ├─ outside the configured namespaces: stored as ignored, with why
      ├─ firing: joins the open incident for its target, reopens one about the same object that
      │  resolved within the relapse window (a relapse), or opens one; a triage run is owed to
      │  an incident the intake has not started one for since it (re)opened (the outbox, same
      │  transaction)
      └─ resolved: annotates its incident, resolves it once all of its alerts have; starts
         nothing

One transaction per payload: everything above is stored, or nothing is and the caller answers
5xx so Alertmanager retries. The health sweep hands its findings over through the same door. The
intake answers a payload of copies only before this (tasks/triggers/copies.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from store import incidents, rehearsal
from store import intake as ledger
from store.engine import session_for
from store.models import AlertReceipt, EventKind, ReceiptDisposition
from store.rehearsal import REHEARSAL
from store.types import utcnow
from tasks.models.alerts import Alert, AlertBatch, AlertStatus, alert_target, out_of_scope
from tasks.records.steps import (
    ALERTS_RESOLVED,
    alert_evidence,
    alert_target_key,
    alert_title,
)
from tasks.run_context import incident_tag
from tasks.settings import Settings, environment_name


class Receipt(BaseModel):
    """What the intake did with one payload; the webhook's answer says the same."""

    model_config = ConfigDict(frozen=True)

    accepted: int = 0  # alerts stored for the first time
    duplicates: int = 0  # copies of alerts stored before (retries, HA replicas, repeats)
    ignored: tuple[str, ...] = ()  # why each out-of-scope alert starts nothing
    incidents_opened: tuple[int, ...] = ()
    incidents_joined: tuple[int, ...] = ()
    incidents_reopened: tuple[int, ...] = ()  # relapses: resolved incidents open again
    incidents_resolved: tuple[int, ...] = ()
    runs_owed: tuple[int, ...] = ()  # incidents a triage run was queued for
    truncated: int = 0  # alerts Alertmanager left out of the group (max_alerts)


def receive(
    batch: AlertBatch,
    *,
    source: str = "alertmanager",
    settings: Settings | None = None,
    lock_wait: float | None = None,
) -> Receipt:
    """Store the payload's alerts and what they mean for incidents, in one transaction.
    `settings`: the caller's, read once (the intake's, at start); None reads them now.
    `lock_wait`: as `session_for`'s (WriteLockBusy, nothing stored, when another writer holds
    SQLite's lock longer)."""
    settings = settings or Settings()
    url = settings.store.url.get_secret_value()
    with session_for(url, lock_wait=lock_wait) as session:
        return _receive(session, batch, source, settings)


def _receive(session: Session, batch: AlertBatch, source: str, settings: Settings) -> Receipt:
    scope = settings.workloads.scope
    fresh_firing: list[Alert] = []
    fresh_resolved: list[Alert] = []
    ignored: list[str] = []
    duplicates = 0
    for alert in batch.alerts:
        if ledger.count_copy(session, **_identity(alert)):
            duplicates += 1
            continue
        why = out_of_scope(alert, scope)
        if not ledger.claim(session, receipt=_receipt(alert, batch, source, why)):
            duplicates += 1  # stored by another intake since count_copy looked
        elif why is not None:
            ignored.append(why)
        else:
            (fresh_firing if alert.firing else fresh_resolved).append(alert)
    opened, joined, reopened, owed = _join(session, batch, fresh_firing, source, settings)
    resolved = _resolve(session, batch, fresh_resolved)
    if batch.truncated_alerts:
        _note_truncated(session, batch, (*opened, *joined, *resolved))
    return Receipt(
        accepted=len(batch.alerts) - duplicates,
        duplicates=duplicates,
        ignored=tuple(ignored),
        incidents_opened=opened,
        incidents_joined=joined,
        incidents_reopened=reopened,
        incidents_resolved=resolved,
        runs_owed=owed,
        truncated=batch.truncated_alerts,
    )


def rehearse(settings: Settings) -> bool:
    """Receive made-up payloads in a transaction rolled back (`store.rehearsal`), so that the
    intake's first real alert finds its statements compiled: compiling them (tens of
    milliseconds) it would hold the write lock, and every copy of it waits for that write.
    False (nothing done) when the store is not SQLite."""

    def payloads(session: Session) -> None:
        for batch in _rehearsal_payloads(settings):
            _receive(session, batch, REHEARSAL, settings)

    return rehearsal.rehearse(settings.store.url.get_secret_value(), payloads)


def _rehearsal_payloads(settings: Settings) -> list[AlertBatch]:
    """An alert of the first namespace in scope and one outside it, in a truncated group; the
    same again (copies); the first resolved."""
    inside, outside = settings.workloads.scope[0], f"{REHEARSAL}-{settings.workloads.scope[0]}"
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": REHEARSAL, "namespace": namespace, "pod": REHEARSAL},
            "startsAt": "2000-01-01T00:00:00Z",
            "fingerprint": f"{REHEARSAL}-{namespace}",
        }
        for namespace in (inside, outside)
    ]
    firing = AlertBatch.model_validate(
        {"version": "4", "status": "firing", "alerts": alerts, "truncatedAlerts": 1}
    )
    resolved = firing.model_copy(
        update={"alerts": (firing.alerts[0].model_copy(update={"status": AlertStatus.RESOLVED}),)}
    )
    return [firing, firing, resolved]


def _receipt(alert: Alert, batch: AlertBatch, source: str, ignored: str | None) -> AlertReceipt:
    return AlertReceipt(
        fingerprint=alert.fingerprint,
        status=alert.status.value,
        starts_at=alert.starts_at,
        alertname=alert.name,
        labels=alert.labels,
        source=source,
        receiver=batch.receiver,
        group_key=batch.group_key,
        disposition=ReceiptDisposition.IGNORED if ignored else ReceiptDisposition.INCIDENT,
        reason=ignored or "",
        received_at=utcnow(),
    )


def identity(alert: Alert) -> ledger.Identity:
    """The alert's key in the ledger: the same fingerprint, status and startsAt is a copy."""
    return (alert.fingerprint, alert.status.value, alert.starts_at)


def _identity(alert: Alert) -> dict[str, Any]:
    fingerprint, status, starts_at = identity(alert)
    return {"fingerprint": fingerprint, "status": status, "starts_at": starts_at}


def _join(
    session: Session, batch: AlertBatch, alerts: list[Alert], source: str, settings: Settings
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Firing alerts, grouped by the object they name: each group joins, reopens (a relapse) or
    opens one incident, and an incident the intake started no triage for since it (re)opened is
    owed a run."""
    by_target: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_target[alert_target_key([alert])].append(alert)
    opened: list[int] = []
    joined: list[int] = []
    reopened: list[int] = []
    owed: list[int] = []
    for target_key, group in by_target.items():
        incident, arrival = incidents.arrive(
            session,
            evidence=incidents.Evidence(
                target_key=target_key,
                title=alert_title(group),
                alerts=tuple(alert_evidence(a, batch.group_key) for a in group),
                trigger=source,
                environment=environment_name(settings.environment),
                relapse_window=settings.incidents.relapse_window,
            ),
        )
        assert incident.id is not None
        {
            incidents.Arrival.OPENED: opened,
            incidents.Arrival.JOINED: joined,
            incidents.Arrival.REOPENED: reopened,
        }[arrival].append(incident.id)
        for alert in group:
            ledger.settle(
                session,
                **_identity(alert),
                disposition=ReceiptDisposition.INCIDENT,
                incident_id=incident.id,
            )
        if ledger.owe_run(
            session,
            incident_id=incident.id,
            idempotency_key=run_key(incident.id, incident.relapses),
            run_name=run_name(incident.id, group),
            parameters=triage_parameters(batch, group, apply=settings.intake.apply),
        ):
            owed.append(incident.id)
    return tuple(opened), tuple(dict.fromkeys(joined)), tuple(reopened), tuple(owed)


def _resolve(session: Session, batch: AlertBatch, alerts: list[Alert]) -> tuple[int, ...]:
    """Resolved alerts start nothing: they annotate their incident, and resolve it when every
    one of its alerts has resolved."""
    touched: list[int] = []
    for alert in alerts:
        found = incidents.record_resolved(
            session, alerts=(alert_evidence(alert, batch.group_key),), summary=ALERTS_RESOLVED
        )
        ledger.settle(
            session,
            **_identity(alert),
            disposition=ReceiptDisposition.INCIDENT if found else ReceiptDisposition.UNMATCHED,
            incident_id=found.id if found else None,
            reason="" if found else "resolved, and no open incident holds this alert",
        )
        if found is not None and found.id is not None:
            touched.append(found.id)
    return tuple(dict.fromkeys(touched))


def _note_truncated(session: Session, batch: AlertBatch, incident_ids: tuple[int, ...]) -> None:
    summary = (
        f"Alertmanager left {batch.truncated_alerts} alert(s) out of group {batch.group_key!r} "
        "(max_alerts): the incident may be wider than its alerts show"
    )
    for incident_id in dict.fromkeys(incident_ids):
        incidents.add_event(session, incident_id=incident_id, kind=EventKind.NOTE, summary=summary)


def run_key(incident_id: int, relapses: int = 0) -> str:
    """The idempotency key of the incident's triage run: one run per incident and relapse, in
    Prefect too."""
    key = f"triage-{incident_tag(incident_id)}"
    return f"{key}-relapse-{relapses}" if relapses else key


def run_name(incident_id: int, alerts: list[Alert]) -> str:
    target = alert_target(alerts[0])
    where = f"{target.namespace or '-'}/{target.named}" if target.named else ""
    return " ".join(
        part for part in (f"incident {incident_id}:", alerts[0].name or "alert", where) if part
    )


def triage_parameters(batch: AlertBatch, alerts: list[Alert], *, apply: bool) -> dict[str, object]:
    """The triage deployment's parameters: the incident's alerts as their own v4 payload."""
    own = batch.model_copy(update={"alerts": tuple(alerts), "truncated_alerts": 0})
    return {"alerts": own.model_dump(mode="json", by_alias=True), "dry_run": not apply}


def incidents_named(receipt: Receipt) -> tuple[int, ...]:
    """Every incident the payload touched, once."""
    return tuple(
        dict.fromkeys(
            chain(
                receipt.incidents_opened,
                receipt.incidents_joined,
                receipt.incidents_reopened,
                receipt.incidents_resolved,
            )
        )
    )


class Purged(BaseModel):
    """What one retention pass deleted."""

    receipts: int = 0
    outbox: int = 0


def purge_expired(settings: Settings | None = None, *, now: datetime | None = None) -> Purged:
    """Retention: delete the alert receipts and the delivered outbox rows older than
    REMEDIATE_INTAKE__RETENTION_DAYS, a batch per transaction. Never an undelivered outbox row
    (a run still owed), nor the receipt of an incident still open (its alert may be re-sent).
    The intake runs this at start and every hour (`deployments.intake.background.Retention`)."""
    settings = settings or Settings()
    url = settings.store.url.get_secret_value()
    before = (now or utcnow()) - timedelta(days=settings.intake.retention_days)
    purged = Purged()
    for field, purge in (
        ("receipts", ledger.purge_receipts),
        ("outbox", ledger.purge_delivered),
    ):
        while True:
            with session_for(url) as session:
                deleted = purge(session, before=before)
            setattr(purged, field, getattr(purged, field) + deleted)
            if deleted < ledger.PURGE_BATCH:
                break
    return purged
