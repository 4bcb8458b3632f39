"""The blackbox exporter's `/probe?module=http_2xx&target=URL`, answered from the sandbox's state.

The project probes two URLs (BlackboxProbeFailed, `probe_success == 0`):

- the Auth0 JWKS URL (runbook D). Under a sandbox it is the one the sandbox serves
  (`REMEDIATE_AUTH__JWKS_URL` from `sandbox.flow_env`, this server's own address), or Auth0's
  own (`sandbox.auth0.JWKS_URL`); both answer `Behaviour.jwks_status`. A real blackbox
  exporter runs in the cluster, so it resolves Auth0 through the cluster's DNS: `dns-failure`
  (CoreDNS lost its upstream) fails the probe before any HTTP status (code 0), while
  `egress-blocked` (a NetworkPolicy selecting alphaswarm-core only) does not touch it.
- the AlphaSwarm client's public URL through ingress-nginx (runbook E), or any other path of a
  stored Ingress: 200 while the backend Service has a ready endpoint, 503 while it has none
  (`sandbox.ingress_routes`), a refused connection (code 0) while no controller pod serves.

Any other target fails as an unresolvable host does (probe_success 0, status code 0). The
durations are fixed figures of the kind a probe takes for each outcome, not measurements.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from sandbox.auth0 import JWKS_HOST, JWKS_PATH
from sandbox.cluster import SandboxCluster
from sandbox.exposition import Family, gauge
from sandbox.ingress_routes import backend_ready, controller_pod, route_for

MODULE = "http_2xx"
# The client's public URL: the alphaswarm Ingress's host, whose `/` path is alphaswarm-client.
CLIENT_URL = "https://app.alphaswarm.enterprise.com/"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Probe:
    status_code: int  # 0: no HTTP answer (DNS failure, connection refused)
    duration_seconds: float

    @property
    def success(self) -> bool:
        return 200 <= self.status_code < 300


NO_SUCH_HOST = Probe(0, 0.002)
REFUSED = Probe(0, 0.001)


def is_jwks(target: str, own_hosts: Collection[str]) -> bool:
    """The target is the JWKS URL: Auth0's, or the one this sandbox serves."""
    url = urlsplit(target)
    host = url.hostname or ""
    return url.path == JWKS_PATH and (
        host == JWKS_HOST or url.netloc in own_hosts or host in LOOPBACK
    )


def probe(cluster: SandboxCluster, target: str, own_hosts: Collection[str] = ()) -> Probe:
    """What an http_2xx probe of `target` finds; `own_hosts` are this server's host:port names."""
    if "://" not in target:
        target = "http://" + target  # as the blackbox exporter reads a bare host
    behaviour = cluster.behaviour
    if is_jwks(target, own_hosts):
        if not behaviour.external_dns:
            return NO_SUCH_HOST
        return Probe(behaviour.jwks_status, 0.085)
    url = urlsplit(target)
    route = route_for(cluster, url.hostname or "", url.path or "/")
    if route is None:
        return NO_SUCH_HOST
    if controller_pod(cluster) is None:
        return REFUSED
    return Probe(200, 0.042) if backend_ready(cluster, route) else Probe(503, 0.011)


def families(result: Probe) -> list[Family]:
    duration = gauge(
        "probe_duration_seconds", "Returns how long the probe took to complete in seconds"
    )
    status = gauge("probe_http_status_code", "Response HTTP status code")
    success = gauge("probe_success", "Displays whether or not the probe was a success")
    return [
        duration.add(result.duration_seconds),
        status.add(result.status_code),
        success.add(1 if result.success else 0),
    ]
