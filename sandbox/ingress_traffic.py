"""The ingress-nginx controller's `nginx_ingress_controller_requests` counter, fed by synthetic
steady traffic.

The sandbox has no clients, so every Ingress path gets REQUESTS_PER_SECOND requests for each
second of wall time that passes, counted when the controller is scraped (the seconds since the
last scrape, at the statuses the cluster shows now; Prometheus scrapes every few seconds). A
request answers 200 while its backend Service has a ready endpoint and 503 while it has none
(`sandbox.ingress_routes`). Runbook E's wedged clients thus turn the `/` path of the alphaswarm
Ingress to 503s, half the Ingress's requests, far over NginxHighHttp5xxErrorRate's 5 %, and a
rollout restart of the client turns them back to 200s.

Counters only grow. Each series is one label set as the controller reports it (labels in the
Go client's alphabetical order, `canary` empty as for any Ingress that is not a canary,
`host` as with the controller's default --metrics-per-host); its count lives as long as the
controller pod that counted it: a replaced controller starts new series (its `controller_pod`
differs) from zero. A crash-looping controller pod keeps its counts across container restarts
(a real one would start again from zero), so no series of the sandbox ever goes down. While no
controller pod serves, nothing is counted and the scrape itself fails, as Prometheus finds a
crash-looping controller's metrics port closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sandbox.cluster import SandboxCluster
from sandbox.exposition import Family, counter
from sandbox.ingress_routes import (
    CONTROLLER_CLASS,
    CONTROLLER_NAMESPACE,
    Route,
    backend_ready,
    controller_pod,
    routes,
)

REQUESTS_PER_SECOND = 10.0  # per Ingress path
METHOD = "GET"


class IngressTraffic:
    """Accumulates each route's requests between scrapes, by the status they got."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()
        self._counts: dict[tuple[str, Route, str], float] = {}

    def families(self, cluster: SandboxCluster) -> list[Family] | None:
        """The counter family, or None while no controller pod serves (the scrape fails)."""
        with self._lock:
            now = self._clock()
            elapsed, self._last = max(now - self._last, 0.0), now
            pod = controller_pod(cluster)
            if pod is None:
                return None
            for route in routes(cluster):
                status = "200" if backend_ready(cluster, route) else "503"
                key = (pod, route, status)
                self._counts[key] = self._counts.get(key, 0.0) + elapsed * REQUESTS_PER_SECOND
            # A replaced controller's series are gone with it (and never come back).
            self._counts = {k: v for k, v in self._counts.items() if k[0] == pod}
            mine = sorted(self._counts.items())
        requests = counter(
            "nginx_ingress_controller_requests", "The total number of client requests"
        )
        for (_, route, status), count in mine:
            requests.add(
                int(count),
                canary="",
                controller_class=CONTROLLER_CLASS,
                controller_namespace=CONTROLLER_NAMESPACE,
                controller_pod=pod,
                host=route.host,
                ingress=route.ingress,
                method=METHOD,
                namespace=route.namespace,
                path=route.path,
                service=route.service,
                status=status,
            )
        return [requests]
