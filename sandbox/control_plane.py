"""The AlphaSwarm control plane (`/manage/...`) as the sandbox serves it.

Scenario C prefers scaling through the control plane because the change then lands an audit
row; this module is that service in miniature: a bearer token, a scale verb that writes the
Deployment through the store (so the controllers react as they would to `kubectl scale`), an
audit table, and the `workload_run` JSON line the runbook greps out of the alphaswarm-cp log.
The queue-backlog incident can make it answer 429 for a number of calls, since a real rate-limited
control plane is exactly when a flow must fall back or retry.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.resources import DEPLOYMENT, POD
from sandbox.shapes import is_active
from sandbox.store import NotFound, Obj

if TYPE_CHECKING:
    from sandbox.cluster import SandboxCluster

DEFAULT_TOKEN = "sandbox-cp-token"
APP_NAMESPACE = "alphaswarm"
CP_NAMESPACE, CP_APP = "alphaswarm-admin", "alphaswarm-cp"
MAX_REPLICAS = 50
# Calls the queue-backlog incident rate-limits unless the cluster says otherwise.
BACKLOG_RATE_LIMITED_CALLS = 2


@dataclass(frozen=True)
class AuditRow:
    ts: str
    event: str
    actor: str
    action: str
    target: str
    namespace: str
    replicas_before: int
    replicas_after: int
    request_id: str
    status: str = "succeeded"


@dataclass
class ControlPlane:
    """The control plane's own state: its token, its audit table, and an injected rate limit."""

    token: str = DEFAULT_TOKEN
    # The next `rate_limited_calls` authorised calls answer 429 with Retry-After.
    rate_limited_calls: int = 0
    # How many calls the queue-backlog incident rate-limits (set before injecting to change it).
    backlog_rate_limited_calls: int = BACKLOG_RATE_LIMITED_CALLS
    retry_after_seconds: int = 1
    rows: list[AuditRow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rate_limit(self, calls: int, retry_after_seconds: int = 1) -> None:
        with self._lock:
            self.rate_limited_calls = calls
            self.retry_after_seconds = retry_after_seconds

    def take_rate_limit(self) -> bool:
        """True when this call is one of the rate-limited ones (and uses it up)."""
        with self._lock:
            if self.rate_limited_calls <= 0:
                return False
            self.rate_limited_calls -= 1
            return True

    def record(self, row: AuditRow) -> None:
        with self._lock:
            self.rows.append(row)

    def audit(self, event: str | None = None, target: str | None = None) -> list[AuditRow]:
        with self._lock:
            rows = list(self.rows)
        return [
            r
            for r in rows
            if (event is None or r.event == event) and (target is None or r.target == target)
        ]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _authorised(cluster: SandboxCluster, request: web.Request) -> web.Response | None:
    """None when the bearer token is the control plane's, else the 401 to answer."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or token.strip() != cluster.control_plane.token:
        response = _error(401, "unauthorized: a valid bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="alphaswarm-cp"'
        return response
    return None


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _log_workload_run(cluster: SandboxCluster, row: AuditRow) -> None:
    """The same row as the control plane prints it to stdout, so `kubectl logs | grep` sees it."""
    line = json.dumps({"ts": row.ts, "level": "INFO", **asdict(row)}, separators=(",", ":"))
    pods, _ = cluster.store.list(POD, CP_NAMESPACE, labels=f"app={CP_APP}")
    for pod in pods:
        if is_active(pod):
            container = pod["spec"]["containers"][0]["name"]
            cluster.runtime.append_log(pod["metadata"]["uid"], container, line)


async def scale(cluster: SandboxCluster, request: web.Request) -> web.Response:
    denied = _authorised(cluster, request)
    if denied is not None:
        return denied
    if cluster.control_plane.take_rate_limit():
        response = _error(429, "rate limited: too many requests, retry later")
        response.headers["Retry-After"] = str(cluster.control_plane.retry_after_seconds)
        return response
    name = request.match_info["name"]
    raw = request.query.get("replicas", "")
    if not raw.isdigit() or int(raw) > MAX_REPLICAS:
        return _error(422, f"replicas must be an integer between 0 and {MAX_REPLICAS}")
    replicas = int(raw)
    dry_run = request.query.get("dryRun") == "All"
    current = cluster.store.get(DEPLOYMENT, APP_NAMESPACE, name)
    if current is None:
        return _error(404, f"deployment {APP_NAMESPACE}/{name} not found")
    before = int(current["spec"].get("replicas", 1))
    request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())
    if not dry_run:

        def set_replicas(d: Obj) -> None:
            d["spec"]["replicas"] = replicas

        try:
            cluster.store.update(DEPLOYMENT, APP_NAMESPACE, name, set_replicas)
        except NotFound:
            return _error(404, f"deployment {APP_NAMESPACE}/{name} not found")
        row = AuditRow(
            ts=_stamp(),
            event="workload_run",
            actor=request.headers.get("X-Actor", "api-token"),
            action="scale",
            target=name,
            namespace=APP_NAMESPACE,
            replicas_before=before,
            replicas_after=replicas,
            request_id=request_id,
        )
        cluster.control_plane.record(row)
        _log_workload_run(cluster, row)
    return web.json_response(
        {
            "deployment": name,
            "namespace": APP_NAMESPACE,
            "replicas": {"before": before, "after": replicas},
            "request_id": request_id,
            "dry_run": dry_run,
        }
    )


async def audit(cluster: SandboxCluster, request: web.Request) -> web.Response:
    denied = _authorised(cluster, request)
    if denied is not None:
        return denied
    rows = cluster.control_plane.audit(request.query.get("event"), request.query.get("target"))
    return web.json_response({"items": [asdict(r) for r in rows]})


def add_routes(app: web.Application, cluster: SandboxCluster) -> None:
    """Register before the Kubernetes catch-all route, which would otherwise answer 404."""

    async def scale_route(request: web.Request) -> web.Response:
        return await scale(cluster, request)

    async def audit_route(request: web.Request) -> web.Response:
        return await audit(cluster, request)

    app.router.add_route("PATCH", "/manage/deployments/{name}/scale", scale_route)
    app.router.add_route("GET", "/manage/audit", audit_route)
