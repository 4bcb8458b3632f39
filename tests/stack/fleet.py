"""Many incidents at once on a sandbox in this process (the incident storm's test and
bench/incident_storm.py share it): a fleet of Deployments in alphaswarm, one crash-looping pod
in each, the notifications Alertmanager sends about them, and the restarts the sandbox received.

The notifications are what infra/alertmanager/receiver.yaml's route makes of the crash loops:
one group per alertname and namespace, so every KubePodCrashLooping of the fleet is in the same
group. Alertmanager sends the group as its alerts arrive: the first notification with those
firing after group_wait, then the whole group again ("new alerts added") each group_interval
while it grows; each of the two HA replicas sends every one of them. Every alert but its first
delivery is a copy.

A fleet Deployment's pods carry no program the sandbox knows: they start, get ready and, once
told to, crash on every start (a corrupt cache, as runbook A's crashloop-single), until a rolling
restart replaces them.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remediate.processes import Child
from remediate.stack import Stack
from sandbox.alerts import crashloop_alert, webhook
from sandbox.cluster import SandboxCluster
from sandbox.incident_logs import CORRUPT_CACHE_LOG
from sandbox.journal import Request
from sandbox.resources import DEPLOYMENT, POD
from sandbox.shapes import is_crashing, is_ready, workload_of

RUNNER_READY_SECONDS = 180.0
NAMESPACE = "alphaswarm"
REPLICAS = 2  # one pod crashing of two: runbook A, and a restart within the blast radius
IMAGE = "ghcr.io/alphaswarm/fleet:1.0.0"
RESTART = re.compile(rf"^/apis/apps/v1/namespaces/{NAMESPACE}/deployments/(?P<name>[^/]+)$")


def second_runner(stack: Stack, log: Path, exits: ExitStack) -> Child:
    """The second worker: another `python -m deployments.serve` on the stack's Prefect API and
    environment, polling the same deployments as the stack's own; stopped when `exits` closes."""
    argv = [sys.executable, "-m", "deployments.serve"]
    env = {**stack.env, "PYTHONUNBUFFERED": "1"}
    child = Child("served-deployments-2", argv, env, log).start()
    exits.callback(child.stop)

    def serving() -> bool:  # its start-up line (deployments/serve.py's, or Prefect's banner)
        text = log.read_text(errors="replace")
        return "serving " in text or "are being served" in text

    child.wait_until(serving, RUNNER_READY_SECONDS, "the second runner serving")
    return child


def add_fleet(cluster: SandboxCluster, names: Iterable[str]) -> None:
    """A Deployment per name, as `kubectl create deployment NAME --image IMAGE --replicas 2`
    creates it; the sandbox's controllers make its ReplicaSet and pods."""
    for name in names:
        labels = {"app": name, "tier": "fleet"}
        template = {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": IMAGE}], "restartPolicy": "Always"},
        }
        cluster.store.create(
            DEPLOYMENT,
            {
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
                "spec": {
                    "replicas": REPLICAS,
                    "selector": {"matchLabels": labels},
                    "template": template,
                },
            },
        )


def pods_of(cluster: SandboxCluster, name: str) -> list[dict[str, Any]]:
    pods, _ = cluster.store.list(POD, NAMESPACE)
    return [p for p in pods if workload_of(p) == name]


def settled(cluster: SandboxCluster, names: Iterable[str]) -> bool:
    """Every Deployment rolled out: its pods ready, none crashing, none left over."""
    for name in names:
        d = cluster.store.get(DEPLOYMENT, NAMESPACE, name)
        if d is None:
            return False
        status = d.get("status") or {}
        if status.get("observedGeneration") != d["metadata"].get("generation") or any(
            status.get(k) != REPLICAS for k in ("replicas", "updatedReplicas", "readyReplicas")
        ):
            return False
        pods = pods_of(cluster, name)
        if len(pods) != REPLICAS or not all(is_ready(p) and not is_crashing(p) for p in pods):
            return False
    return True


def crash_one_pod_each(cluster: SandboxCluster, names: Iterable[str]) -> dict[str, str]:
    """The first pod of each Deployment crashes on every start from now on: {pod: Deployment}."""
    crashing = {}
    for name in names:
        pod = min(pods_of(cluster, name), key=lambda p: p["metadata"]["name"])
        cluster.behaviour.set_pod(
            pod["metadata"]["uid"], crash_looping=True, crash_log=CORRUPT_CACHE_LOG, exit_code=3
        )
        crashing[pod["metadata"]["name"]] = name
    return crashing


def crash_looping(cluster: SandboxCluster, pods: Iterable[str]) -> bool:
    """Every pod named has crashed and restarted at least once, and is down now: what
    KubePodCrashLooping fires on."""
    for name in pods:
        pod = cluster.store.get(POD, NAMESPACE, name)
        if pod is None or not is_crashing(pod):
            return False
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if not any(cs.get("restartCount", 0) >= 1 for cs in statuses):
            return False
    return True


def notifications(pods: Sequence[str], waves: Sequence[int]) -> list[dict[str, Any]]:
    """Alertmanager's notifications of the group while it grows: the first `waves[0]` pods'
    alerts, then the group again with `waves[1]`, ... (the last wave: every pod)."""
    now = datetime.now(UTC)
    alerts = [crashloop_alert(NAMESPACE, pod, starts_at=now) for pod in pods]
    bodies = []
    for n, size in enumerate(waves):
        body = webhook(alerts[:size])
        body["notification_reason"] = "first notification" if n == 0 else "new alerts added"
        bodies.append(body)
    return bodies


def waves_of(incidents: int) -> list[int]:
    """How the group grows: a fifth of the alerts at group_wait, half, four fifths, all."""
    return sorted({max(1, incidents // 5), max(1, incidents // 2), incidents * 4 // 5, incidents})


def restarted(r: Request) -> str | None:
    """The Deployment a request restarted (a PATCH of it that was not a dry run), else None."""
    if r.method != "PATCH" or r.dry_run:
        return None
    found = RESTART.match(r.path)
    return found["name"] if found else None


def restarts(requests: Iterable[Request]) -> Counter[str]:
    """How many restarts each Deployment received."""
    return Counter(name for r in requests if (name := restarted(r)))


def wait_for(what: str, ready: Callable[[], Any], timeout: float, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := ready()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(poll)
    return found
