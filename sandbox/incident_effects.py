"""Incident consequences that must follow the cluster's state tick by tick.

Some incidents are not a fixed flag: pods crash only *while* the HPA thrashes, workers crash only
*while* Redis is down, authenticated requests fail only *while* the pod enforces auth and cannot
reach JWKS (and, in `sandbox.backlog`, the queue grows only *while* too few workers drain it).
Each effect here re-reads the stored objects every tick and sets the behaviour knobs to match,
so the runbook's mitigation (which changes a stored object) ends the incident through the same
path a real cluster would, and a wrong mitigation visibly does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.autoscaler import scale_up_window
from sandbox.behaviour import FLAP_DAMPING_WINDOW
from sandbox.cluster import SandboxCluster
from sandbox.egress import curl_jwks_from_pod
from sandbox.resources import HPA, POD
from sandbox.shapes import is_active

NS = "alphaswarm"
OOM_LOG = (
    "INFO     [alphaswarm.api] POST /api/v1/backtests accepted run_id=4471 "
    "strategy=grid-search-all universe=ALL horizon=20y",
    "WARNING  [alphaswarm.backtest] run 4471: materialising 1.4e9 candle rows in memory",
    "WARNING  [alphaswarm.backtest] run 4471: rss 1013Mi of 1Gi limit",
    "Killed",
)


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _pods(cluster: SandboxCluster, app: str, namespace: str = NS) -> list[Mapping[str, Any]]:
    pods, _ = cluster.store.list(POD, namespace, labels=f"app={app}")
    return sorted((p for p in pods if is_active(p)), key=lambda p: p["metadata"]["name"])


def _container(pod: Mapping[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["name"])


def _running(pod: Mapping[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (cs.get("state") or {}) for cs in statuses)


@dataclass
class ThrashCrashes:
    """While the HPA's scale-up window is under 300 s, the runaway backtest keeps CPU pinned and
    OOM-kills `count` core pods (replacements included, so a rollout restart changes nothing);
    once the window is widened, the crashed pods come back on their next restart."""

    hpa: str = "alphaswarm-core"
    app: str = "alphaswarm-core"
    count: int = 2
    crashing: set[str] = field(default_factory=set)

    def __call__(self, cluster: SandboxCluster, now: float) -> None:
        hpa = cluster.store.get(HPA, NS, self.hpa)
        flapping = hpa is not None and scale_up_window(hpa) < FLAP_DAMPING_WINDOW
        behaviour = cluster.behaviour
        if not flapping:
            for uid in self.crashing:
                behaviour.forget_pod(uid)
            self.crashing.clear()
            behaviour.set_workload(NS, self.app, cpu=None)
            return
        behaviour.set_workload(NS, self.app, cpu="940m")
        pods = _pods(cluster, self.app)
        self.crashing &= {p["metadata"]["uid"] for p in pods}
        for pod in pods:
            if len(self.crashing) >= self.count:
                break
            uid = pod["metadata"]["uid"]
            if uid not in self.crashing:
                behaviour.set_pod(
                    uid,
                    crash_looping=True,
                    crash_log=OOM_LOG,
                    exit_code=137,
                    exit_reason="OOMKilled",
                )
                self.crashing.add(uid)


@dataclass
class WorkersNeedRedis:
    """Celery workers exit when the broker refuses connections, and start cleanly once it is
    back: restarting them while Redis is down fixes nothing (the triage tree's reason to check
    the platform branch first)."""

    app: str = "alphaswarm-worker"

    def __call__(self, cluster: SandboxCluster, now: float) -> None:
        redis_up = any(cluster.behaviour.serving(p) for p in _pods(cluster, "redis"))
        cluster.behaviour.set_workload(NS, self.app, crash_looping=not redis_up, crash_log=())


def auth_mode(pod: Mapping[str, Any]) -> str:
    for var in pod["spec"]["containers"][0].get("env") or []:
        if var.get("name") == "ALPHASWARM_AUTH_ENFORCE":
            return str(var.get("value") or "enforce")
    return "enforce"


@dataclass
class AuthRequests:
    """Each tick every running core pod serves one authenticated read: rejected with
    `jwks_unreachable` while it enforces auth and cannot fetch the JWKS, served once
    ALPHASWARM_AUTH_ENFORCE=permissive reaches the pod (a new pod, after `kubectl set env`)."""

    app: str = "alphaswarm-core"
    announced: set[str] = field(default_factory=set)

    def __call__(self, cluster: SandboxCluster, now: float) -> None:
        for pod in _pods(cluster, self.app):
            if not _running(pod):
                continue
            uid, container = pod["metadata"]["uid"], _container(pod)
            probe = curl_jwks_from_pod(cluster, pod)
            mode = auth_mode(pod)
            lines = []
            if mode == "permissive" and uid not in self.announced:
                self.announced.add(uid)
                lines.append(
                    f"{_iso(now)} WARNING  [alphaswarm.auth] auth enforcement: permissive; "
                    "read-only routes skip JWT verification"
                )
            if probe.exit_code == 0:
                lines.append(
                    f'{_iso(now)} INFO     [uvicorn.access] 10.244.1.7:41234 - "GET '
                    '/api/v1/strategies HTTP/1.1" 200'
                )
            elif mode == "permissive":
                lines.append(
                    f'{_iso(now)} INFO     [uvicorn.access] 10.244.1.7:41234 - "GET '
                    '/api/v1/strategies HTTP/1.1" 200 (auth=permissive)'
                )
            else:
                reason = probe.stderr.strip().removeprefix("curl: ")
                lines += [
                    f"{_iso(now)} ERROR    [alphaswarm.auth] jwks_unreachable: {reason}",
                    f'{_iso(now)} INFO     [uvicorn.access] 10.244.1.7:41234 - "GET '
                    '/api/v1/strategies HTTP/1.1" 401 jwks_unreachable',
                ]
            cluster.runtime.append_log(uid, container, *lines)
