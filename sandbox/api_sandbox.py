"""The sandbox's own endpoints beside the Kubernetes API: the incident control API, so a running
sandbox can be driven from another process (`remediate sandbox inject`), the list of real-cluster
conditions (`/sandbox/v1/conditions`, each marked `applied` when this sandbox was seeded with it),
and the Auth0 JWKS
endpoint as seen from outside the cluster, so a flow can probe JWKS "from this process" with
httpx against a URL its settings point at the sandbox.
"""

from __future__ import annotations

from aiohttp import web

from sandbox import conditions, injections
from sandbox.api_control_plane import add_routes as add_control_plane_routes
from sandbox.auth0 import JWKS_DOCUMENT, JWKS_PATH
from sandbox.cluster import SandboxCluster

INCIDENTS_PATH = "/sandbox/v1/incidents"
CONDITIONS_PATH = "/sandbox/v1/conditions"


def _listing() -> list[dict[str, str]]:
    return [
        {"name": i.name, "branch": i.branch, "summary": i.summary}
        for i in injections.INCIDENTS.values()
    ]


def _conditions(cluster: SandboxCluster) -> list[dict[str, object]]:
    return [
        {
            "name": c.name,
            "summary": c.summary,
            "symptom": c.symptom,
            "right": c.right,
            "wrong": list(c.wrong),
            "applied": c.name in cluster.conditions,
        }
        for c in conditions.CONDITIONS.values()
    ]


def add_routes(app: web.Application, cluster: SandboxCluster) -> None:
    """Register before the Kubernetes catch-all route."""

    async def jwks(request: web.Request) -> web.Response:
        # Reachable from outside the cluster whatever the in-cluster DNS or egress says.
        status = cluster.behaviour.jwks_status
        if status == 200:
            return web.json_response(JWKS_DOCUMENT)
        return web.Response(status=status, text=f"upstream status {status}\n")

    async def list_incidents(request: web.Request) -> web.Response:
        return web.json_response({"items": _listing()})

    async def list_conditions(request: web.Request) -> web.Response:
        return web.json_response({"items": _conditions(cluster)})

    async def inject(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            incident = injections.inject(cluster, name)
        except injections.UnknownIncident:
            return web.json_response(
                {"error": f"unknown incident {name!r}", "known": injections.names()}, status=400
            )
        except injections.IncidentError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(
            {
                "injected": incident.name,
                "branch": incident.branch,
                "symptom": incident.symptom,
                "mitigation": incident.mitigation,
            },
            status=201,
        )

    async def heal(request: web.Request) -> web.Response:
        injections.heal(cluster)
        return web.json_response({"healed": True})

    app.router.add_route("GET", JWKS_PATH, jwks)
    app.router.add_route("GET", INCIDENTS_PATH, list_incidents)
    app.router.add_route("GET", CONDITIONS_PATH, list_conditions)
    app.router.add_route("DELETE", INCIDENTS_PATH, heal)
    app.router.add_route("POST", INCIDENTS_PATH + "/{name}", inject)
    add_control_plane_routes(app, cluster)
