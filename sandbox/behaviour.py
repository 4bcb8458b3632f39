"""How the simulated workloads behave: the knobs incidents flip and controllers consult.

The API objects say what the cluster wants; this model says what the software inside does when
it runs (crash, fail its readiness probe, burn CPU) and how the outside world answers (the Auth0
JWKS endpoint). An incident is a few assignments here, never a rewrite of stored objects: the
controllers turn the flags into pod states, events, logs, endpoints and rescales on their next
tick, exactly as a real cluster would react to a broken image or a failing dependency.

Lookup order for a pod: its own override (by uid, so a replacement pod starts healthy), then its
workload's behaviour (by namespace and Deployment/StatefulSet name, so a rollout of a still-broken
template keeps crashing), then healthy.

`CrashCycle` times how a crash-looping container lives (see `sandbox.kubelet`); `serving` is what
a client of a pod sees: a container without a readiness probe is Ready from the moment it starts,
even one that is about to crash again, but nothing can talk to a process that is dying.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.shapes import is_ready, is_terminating, workload_of


@dataclass(frozen=True)
class PodBehaviour:
    crash_looping: bool = False
    # What the crashing container prints before it exits; empty means the app's usual crash.
    crash_log: tuple[str, ...] = ()
    exit_code: int = 1
    # lastState.terminated.reason of the crashed container: "Error", or "OOMKilled" (exit 137).
    exit_reason: str = "Error"
    # The readiness probe passes; False keeps a running pod out of its Service's endpoints.
    ready: bool = True
    # metrics.k8s.io usage; None means the app's usual figures.
    cpu: str | None = None
    memory: str | None = None


HEALTHY = PodBehaviour()


@dataclass(frozen=True)
class HpaBehaviour:
    # (low, high): rescale the target between the two sizes every tick, until the HPA's
    # spec.behavior.scaleUp.stabilizationWindowSeconds reaches FLAP_DAMPING_WINDOW.
    flap: tuple[int, int] | None = None
    cpu_utilization: int = 64  # percent of request, reported in status.currentMetrics


@dataclass(frozen=True)
class CrashCycle:
    """A crash-looping container's life, in controller ticks: it runs `run_ticks` after each
    (re)start, shows its termination (Error, OOMKilled) for one tick, then waits out the
    kubelet's back-off, one tick after the first crash doubling up to `max_backoff_ticks` (the
    kubelet's 10 s doubling to 5 min, compressed)."""

    run_ticks: int = 1
    max_backoff_ticks: int = 8

    def backoff_ticks(self, crashes: int) -> int:
        return int(min(2 ** max(crashes - 1, 0), self.max_backoff_ticks))


def backoff_seconds(crashes: int) -> int:
    """The back-off the kubelet reports after `crashes` crashes: 10 s doubling, capped at 5 min."""
    return int(min(10 * 2 ** max(crashes - 1, 0), 300))


# The runbook's mitigation for HPA thrash widens the scale-up window to 300 s.
FLAP_DAMPING_WINDOW = 300


@dataclass
class Behaviour:
    workloads: dict[tuple[str, str], PodBehaviour] = field(default_factory=dict)
    pods: dict[str, PodBehaviour] = field(default_factory=dict)  # by pod uid
    hpas: dict[tuple[str, str], HpaBehaviour] = field(default_factory=dict)
    # HTTP status the Auth0 JWKS endpoint answers with (seen by `curl` exec'd in pods).
    jwks_status: int = 200
    # Whether the cluster's DNS resolves names outside the cluster (CoreDNS's upstream); False
    # makes `curl` of the JWKS URL inside a pod fail with "Could not resolve host".
    external_dns: bool = True
    # Percent used of each PersistentVolumeClaim's volume, as `df -h` shows; by (ns, claim).
    volume_usage: dict[tuple[str, str], int] = field(default_factory=dict)
    # How crash-looping containers cycle; a cluster condition (running-between-crashes) changes
    # it, incidents do not (heal leaves it alone).
    crash_cycle: CrashCycle = field(default_factory=CrashCycle)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def for_pod(self, uid: str, namespace: str, workload: str | None) -> PodBehaviour:
        with self._lock:
            if uid in self.pods:
                return self.pods[uid]
            return self.workloads.get((namespace, workload or ""), HEALTHY)

    def set_workload(self, namespace: str, name: str, **changes: Any) -> PodBehaviour:
        """Change how every pod of a Deployment or StatefulSet behaves, replacements included."""
        with self._lock:
            current = self.workloads.get((namespace, name), HEALTHY)
            self.workloads[(namespace, name)] = updated = replace(current, **changes)
            return updated

    def set_pod(self, uid: str, **changes: Any) -> PodBehaviour:
        """Change how one pod instance behaves; a pod that replaces it is not affected."""
        with self._lock:
            self.pods[uid] = updated = replace(self.pods.get(uid, HEALTHY), **changes)
            return updated

    def hpa(self, namespace: str, name: str) -> HpaBehaviour:
        with self._lock:
            return self.hpas.get((namespace, name), HpaBehaviour())

    def hpa_flap(self, namespace: str, name: str, low: int, high: int) -> None:
        """Make the HPA thrash between `low` and `high` replicas."""
        with self._lock:
            current = self.hpas.get((namespace, name), HpaBehaviour())
            self.hpas[(namespace, name)] = replace(current, flap=(low, high))

    def hpa_steady(self, namespace: str, name: str) -> None:
        with self._lock:
            current = self.hpas.get((namespace, name), HpaBehaviour())
            self.hpas[(namespace, name)] = replace(current, flap=None)

    def forget_pod(self, uid: str) -> None:
        with self._lock:
            self.pods.pop(uid, None)

    def of(self, pod: Mapping[str, Any]) -> PodBehaviour:
        meta = pod["metadata"]
        return self.for_pod(meta["uid"], meta["namespace"], workload_of(pod))

    def serving(self, pod: Mapping[str, Any]) -> bool:
        """Ready and staying up: what a client of the pod (a worker, redis-cli) can rely on."""
        return is_ready(pod) and not is_terminating(pod) and not self.of(pod).crash_looping
