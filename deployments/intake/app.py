"""The Alertmanager intake: the webhook that turns alerts into incidents and triage runs.

    POST /api/v1/alerts   an Alertmanager v4 payload, with `Authorization: Bearer <token>`
    GET  /healthz         the store answers; how many triage runs are still owed
    GET  /metrics         Prometheus text
    GET  /openapi.json    this description (and /docs)

Alertmanager retries only on 5xx and time-outs and drops a 4xx for good, so the answers mean:
  401  no or wrong token: nothing stored
  413  the body is over REMEDIATE_INTAKE__MAX_BODY_BYTES (4 MiB): refused once that much is
       read (at once when Content-Length says so), the rest never read: nothing stored
  422  not an Alertmanager v4 payload; the message names the field: nothing stored
  503  the store could not take the alerts: nothing stored, retry
  200  every alert is stored (or was already), and the body says what became of each. Stored
       means on disk: SQLite commits with synchronous=FULL (an fsync per new alert, a few ms;
       copies cost none), PostgreSQL with its own synchronous_commit (on by default)
The triage runs are created after the answer, from the outbox (`OutboxDispatcher`), so a slow
or absent Prefect never makes Alertmanager wait or retry. A payload of copies only (a retry, the
other replica's, a group re-sent) is answered without the write lock (`storing.py`).
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from deployments.intake.background import Chore, CopyWriter, OutboxDispatcher, Retention
from deployments.intake.metrics import IntakeMetrics
from deployments.intake.storing import PayloadStore
from store.engine import StoreError
from store.schema import StoreNotMigrated
from tasks.models.alerts import AlertBatch, InvalidAlertPayload, parse_alertmanager
from tasks.settings import Intake, Settings
from tasks.triggers import outbox
from tasks.triggers.intake import Receipt, incidents_named

log = logging.getLogger("remediate.intake")

WEBHOOK_PATH = "/api/v1/alerts"
# The default limit (REMEDIATE_INTAKE__MAX_BODY_BYTES): Alertmanager's max_alerts keeps real
# groups far below it.
MAX_BODY_BYTES = Intake().max_body_bytes


async def _read_at_most(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes: a Content-Length over
    it is refused before a byte is read, and a body without one (chunked), or longer than it
    said, is read only until it passes the limit. The rest is never read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Accepted(BaseModel):
    """Every alert of the payload is stored; what became of them."""

    status: str = "accepted"
    message: str
    accepted: int
    duplicates: int
    ignored: list[str]
    incidents: list[int]
    runs_queued: int
    truncated: int


class Problem(BaseModel):
    """Why the payload was refused (4xx: do not retry) or not stored (503: retry)."""

    error: str


def _summary(receipt: Receipt) -> str:
    parts = [f"{receipt.accepted} alert(s) stored"]
    if receipt.duplicates:
        parts.append(f"{receipt.duplicates} already stored (copies)")
    if receipt.ignored:
        parts.append(f"{len(receipt.ignored)} ignored: outside the configured namespaces")
    if receipt.runs_owed:
        parts.append(f"triage queued for incident(s) {', '.join(map(str, receipt.runs_owed))}")
    if receipt.incidents_resolved:
        parts.append(f"incident(s) {', '.join(map(str, receipt.incidents_resolved))} updated")
    if receipt.truncated:
        parts.append(f"{receipt.truncated} alert(s) truncated by Alertmanager, noted")
    return "; ".join(parts)


def _pending_or_nan() -> float:
    try:
        return float(outbox.pending())
    except Exception:
        return math.nan  # the store is down: say "unknown", never a reassuring 0


def create_app(token: str, *, dispatch: bool = True) -> FastAPI:
    """The intake; `token` is the bearer token Alertmanager must send (never empty)."""
    if not token:
        raise ValueError("the intake needs a bearer token (REMEDIATE_INTAKE_TOKEN)")
    settings = Settings()  # read once: building it costs more than storing a copy
    payloads = PayloadStore(settings)
    metrics = IntakeMetrics(_pending_or_nan)
    dispatcher = OutboxDispatcher(metrics) if dispatch else None
    chores: list[Chore] = [
        CopyWriter(payloads.copies),
        Retention(settings),
        *([dispatcher] if dispatcher else []),
    ]

    def start() -> None:
        try:
            payloads.rehearse()
        except Exception as exc:  # only speed is lost; a store that is down 503s the first alert
            log.warning("rehearsal skipped: %s: %s", type(exc).__name__, exc)
        for chore in chores:
            chore.start()

    def stop() -> None:
        for chore in chores:
            chore.stop()  # the copy writer writes what it holds
        payloads.close()

    app = FastAPI(
        title="AlphaSwarm remediation intake",
        version="1",
        description=__doc__,
        on_startup=[start],
        on_shutdown=[stop],
    )
    expected = f"Bearer {token}".encode()
    limit = settings.intake.max_body_bytes

    def refuse(status: int, reason: str, error: str, **headers: str) -> JSONResponse:
        metrics.rejected.labels(reason).inc()
        return JSONResponse(Problem(error=error).model_dump(), status_code=status, headers=headers)

    @app.post(
        WEBHOOK_PATH,
        response_model=Accepted,
        responses={
            401: {"model": Problem},
            413: {"model": Problem},
            422: {"model": Problem},
            503: {"model": Problem},
        },
        summary="Receive an Alertmanager webhook payload (version 4)",
    )
    async def alerts(request: Request) -> Any:
        started = time.perf_counter()
        try:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return refuse(
                    401,
                    "unauthorized",
                    "missing or wrong bearer token (Authorization: Bearer <token>)",
                    **{"WWW-Authenticate": "Bearer"},
                )
            body = await _read_at_most(request, limit)
            if body is None:
                # Not read to its end: the connection cannot carry another request.
                return refuse(413, "too_large", f"body over {limit} bytes", Connection="close")
            try:
                batch = parse_alertmanager(body)
            except InvalidAlertPayload as exc:
                return refuse(422, "invalid", f"not an Alertmanager v4 payload: {exc}")
            try:
                receipt = await payloads.store(batch)
            except (StoreError, StoreNotMigrated) as exc:
                log.error("alerts not stored: %s", exc)
                return refuse(
                    503,
                    "store_unavailable",
                    f"the alerts could not be stored ({type(exc).__name__}); retry",
                )
            metrics.accepted.inc(receipt.accepted)
            metrics.duplicates.inc(receipt.duplicates)
            metrics.ignored.inc(len(receipt.ignored))
            if receipt.runs_owed and dispatcher is not None:
                dispatcher.wake()
            accepted = Accepted(
                message=_summary(receipt),
                accepted=receipt.accepted,
                duplicates=receipt.duplicates,
                ignored=list(receipt.ignored),
                incidents=list(incidents_named(receipt)),
                runs_queued=len(receipt.runs_owed),
                truncated=receipt.truncated,
            )
            # Written as it is: FastAPI would validate and encode the model once more.
            return Response(accepted.model_dump_json(), media_type="application/json")
        finally:
            metrics.latency.observe(time.perf_counter() - started)

    @app.get("/healthz", summary="Liveness and readiness: the store answers")
    def healthz() -> JSONResponse:
        try:
            pending = outbox.pending()
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "error": f"store: {type(exc).__name__}"},
                status_code=503,
            )
        body: dict[str, Any] = {"status": "ok", "outbox_pending": pending}
        if dispatcher is not None and dispatcher.last_error:
            body["last_delivery_error"] = dispatcher.last_error
        return JSONResponse(body)

    @app.get("/metrics", summary="Prometheus metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with the webhook's body (read raw, so that a bad payload gets our
    message) described as the Alertmanager v4 payload, and the bearer token."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    payload = AlertBatch.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(payload.pop("$defs", {}))
    components["schemas"]["AlertmanagerPayload"] = payload
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    post = schema["paths"][WEBHOOK_PATH]["post"]
    post["security"] = [{"bearer": []}]
    post["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AlertmanagerPayload"}}
        },
    }
    app.openapi_schema = schema
    return schema
