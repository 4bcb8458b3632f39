"""The exporters' endpoints a real Prometheus scrapes, on the sandbox's own HTTP server.

In a cluster each of these is a separate pod's metrics port, not part of the Kubernetes API, so
they take no token: the routes are registered before the API's catch-all, whose RBAC check
(`sandbox.rbac`) never sees them. Prometheus adds `job` and `instance` from its scrape config;
nothing here emits them.

    /exporters/kube-state-metrics/metrics   sandbox.kube_state_metrics
    /exporters/celery/metrics               sandbox.celery_exporter
    /exporters/postgres/metrics             sandbox.datastore_exporters (pg_up)
    /exporters/redis/metrics                sandbox.datastore_exporters (redis_up)
    /exporters/ingress-nginx/metrics        sandbox.ingress_traffic
    /exporters/blackbox/probe               sandbox.blackbox_probe (?module=http_2xx&target=URL)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox import blackbox_probe, datastore_exporters, kube_state_metrics
from sandbox.celery_exporter import CeleryExporter
from sandbox.cluster import SandboxCluster
from sandbox.exposition import CONTENT_TYPE, Family, render
from sandbox.ingress_traffic import IngressTraffic

PREFIX = "/exporters"
KUBE_STATE_METRICS_PATH = f"{PREFIX}/kube-state-metrics/metrics"
CELERY_PATH = f"{PREFIX}/celery/metrics"
POSTGRES_PATH = f"{PREFIX}/postgres/metrics"
REDIS_PATH = f"{PREFIX}/redis/metrics"
INGRESS_NGINX_PATH = f"{PREFIX}/ingress-nginx/metrics"
BLACKBOX_PATH = f"{PREFIX}/blackbox/probe"


Handler = Callable[[web.Request], Awaitable[web.Response]]


def exposition(families: list[Family]) -> web.Response:
    return web.Response(body=render(families).encode(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application, cluster: SandboxCluster) -> None:
    """Register before the Kubernetes catch-all route."""
    celery = CeleryExporter()
    traffic = IngressTraffic()

    def computed(build: Callable[[SandboxCluster], list[Family]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return exposition(build(cluster))

        return handler

    async def celery_metrics(request: web.Request) -> web.Response:
        # It may ask the real broker: off the event loop, which serves the Kubernetes API too.
        return exposition(await asyncio.to_thread(celery.families, cluster))

    async def ingress_nginx(request: web.Request) -> web.Response:
        families = traffic.families(cluster)
        if families is None:
            return web.Response(status=503, text="no ingress-nginx controller pod is serving\n")
        return exposition(families)

    async def blackbox(request: web.Request) -> web.Response:
        module = request.query.get("module", blackbox_probe.MODULE)
        if module != blackbox_probe.MODULE:
            return web.Response(status=400, text=f'Unknown module "{module}"\n')
        target = request.query.get("target", "")
        if not target:
            return web.Response(status=400, text="Target parameter is missing\n")
        result = blackbox_probe.probe(cluster, target, own_hosts={request.host})
        return exposition(blackbox_probe.families(result))

    app.router.add_get(KUBE_STATE_METRICS_PATH, computed(kube_state_metrics.families))
    app.router.add_get(CELERY_PATH, celery_metrics)
    app.router.add_get(POSTGRES_PATH, computed(datastore_exporters.postgres_families))
    app.router.add_get(REDIS_PATH, computed(datastore_exporters.redis_families))
    app.router.add_get(INGRESS_NGINX_PATH, ingress_nginx)
    app.router.add_get(BLACKBOX_PATH, blackbox)
