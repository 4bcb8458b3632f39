"""The AlphaSwarm control plane (`/manage/...`) as the sandbox serves it.

Scenario C prefers scaling through the control plane because the change then lands an audit
row; this module is that service in miniature: a bearer token, a scale verb that writes the
Deployment through the store (so the controllers react as they would to `kubectl scale`), an
audit table (`sandbox.control_plane`), and the `workload_run` JSON line the runbook greps out of
the alphaswarm-cp log. Requests reach it through ingress-nginx and the alphaswarm-cp Service, so
while no alphaswarm-cp pod serves (the `cp-crashloop` incident) they get ingress-nginx's 503.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.cluster import SandboxCluster
from sandbox.control_plane import APP_NAMESPACE, CP_APP, CP_NAMESPACE, MAX_REPLICAS, AuditRow
from sandbox.resources import DEPLOYMENT, POD
from sandbox.shapes import is_active
from sandbox.store import NotFound, Obj


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


# ingress-nginx's answer when the backend Service has no ready endpoint.
NGINX_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _unavailable(cluster: SandboxCluster) -> web.Response | None:
    pods, _ = cluster.store.list(POD, CP_NAMESPACE, labels=f"app={CP_APP}")
    if any(cluster.behaviour.serving(p) for p in pods):
        return None
    return web.Response(status=503, text=NGINX_503, content_type="text/html")


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
    denied = _unavailable(cluster) or _authorised(cluster, request)
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
    denied = _unavailable(cluster) or _authorised(cluster, request)
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
