"""Deliver the triage runs owed to incidents: each outbox row becomes a flow run of the triage
deployment, created through the Prefect API with the row's idempotency key.

Prefect enforces that key with a unique index per flow, so delivering a row twice (two intake
replicas, or a crash between Prefect's answer and our commit) finds the same run instead of
starting a second one. When Prefect cannot be reached the rows stay, and are retried with a
back-off until it answers: an accepted alert waits, it is never lost.
"""

from __future__ import annotations

import functools
import logging
import ssl
from uuid import UUID

import certifi
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY
from pydantic import BaseModel, ConfigDict

from store import intake as ledger
from store.engine import session_for
from store.models import TriageOutbox
from tasks.records.steps import store_url
from tasks.run_context import incident_tag
from tasks.settings import Settings

log = logging.getLogger(__name__)

TRIGGER_TAG = "alertmanager-intake"


class Delivery(BaseModel):
    """One pass over the outbox."""

    model_config = ConfigDict(frozen=True)

    started: tuple[str, ...] = ()  # the flow runs created (or found again by their key)
    failed: int = 0  # rows left for a later attempt
    error: str = ""  # the last failure, for the log and /healthz


def deliver_pending(limit: int = 100) -> Delivery:
    """Create the triage runs of the rows that are due; never raises for an unreachable
    Prefect (the rows stay pending)."""
    with session_for(store_url(), read_only=True) as session:
        rows = ledger.due(session, limit=limit)
    if not rows:
        return Delivery()
    started: list[str] = []
    failures: list[str] = []
    try:
        with get_client(sync_client=True, httpx_settings={"verify": _tls()}) as client:
            deployment_id = _deployment_id(client)
            for row in rows:
                try:
                    started.append(_create_run(client, deployment_id, row))
                except Exception as exc:
                    failures.append(_failed(row, exc))
    except Exception as exc:  # Prefect unreachable, or the deployment is not there
        failures += [_failed(row, exc) for row in rows[len(started) + len(failures) :]]
    return Delivery(
        started=tuple(started), failed=len(failures), error=failures[-1] if failures else ""
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS context Prefect's client builds for every new client, built once per process:
    loading the CA bundle costs ~40 ms of CPU, and the intake's answers wait while it holds the
    interpreter. Same settings: PREFECT_API_SSL_CERT_FILE (else certifi's bundle), and no
    verification when PREFECT_API_TLS_INSECURE_SKIP_VERIFY."""
    if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())


def _deployment_id(client: SyncPrefectClient) -> UUID:
    name = Settings().intake.triage_deployment
    try:
        return client.read_deployment_by_name(name).id
    except Exception as exc:
        raise LookupError(
            f"no Prefect deployment {name!r} ({type(exc).__name__}): are the deployments "
            "served (`python -m deployments.serve`, or `remediate up`)?"
        ) from exc


def _create_run(client: SyncPrefectClient, deployment_id: UUID, row: TriageOutbox) -> str:
    assert row.id is not None
    tags = [TRIGGER_TAG, *([incident_tag(row.incident_id)] if row.incident_id else [])]
    run = client.create_flow_run_from_deployment(
        deployment_id,
        parameters=row.parameters,
        name=row.run_name or None,
        tags=tags,
        idempotency_key=row.idempotency_key,
    )
    with session_for(store_url()) as session:
        ledger.delivered(session, row=row, flow_run_id=str(run.id))
    log.info("incident %s: triage run %s (%s)", row.incident_id, run.id, row.run_name)
    return str(run.id)


def _failed(row: TriageOutbox, exc: BaseException) -> str:
    assert row.id is not None
    error = f"{type(exc).__name__}: {exc}"
    with session_for(store_url()) as session:
        ledger.failed(session, row_id=row.id, attempts=row.attempts + 1, error=error)
    log.warning("incident %s: triage run not created yet (%s)", row.incident_id, error)
    return error


def pending() -> int:
    """Triage runs owed and not yet created (the outbox's depth)."""
    with session_for(store_url(), read_only=True) as session:
        return ledger.pending_count(session)
