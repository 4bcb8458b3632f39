"""The controllers that make the sandbox move like a cluster, run one tick at a time.

A tick runs, in order: the injected incidents' effects, the kubelet (pod states), the Deployment
controller's rolling step, the ReplicaSet controller (pods to match), Deployment status,
StatefulSets, Endpoints and the HPA.
Tests call `step()` directly for deterministic progress; the server calls `start(interval)` to
tick on a daemon thread. Wall-clock time comes from `clock`, which tests may replace to cross a
progress deadline without sleeping.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from sandbox.autoscaler import AutoscalerController
from sandbox.cluster import SandboxCluster
from sandbox.endpoints import EndpointsController
from sandbox.kubelet import Kubelet
from sandbox.rollout import DeploymentController, ReplicaSetController
from sandbox.statefulset import StatefulSetController

log = logging.getLogger(__name__)


class Controllers:
    def __init__(
        self, cluster: SandboxCluster, *, clock: Callable[[], float] = time.time, seed: int = 0
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        rng = random.Random(seed)
        self.kubelet = Kubelet(cluster, rng)
        self.deployments = DeploymentController(cluster)
        self.replica_sets = ReplicaSetController(cluster, rng)
        self.stateful_sets = StatefulSetController(cluster)
        self.endpoints = EndpointsController(cluster)
        self.autoscalers = AutoscalerController(cluster)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        """One deterministic tick of every controller."""
        with self._lock:
            now = self.clock()
            for effect in list(self.cluster.effects.values()):
                effect(self.cluster, now)
            self.kubelet.step(now)
            self.deployments.sync(now)
            self.replica_sets.step(now)
            self.deployments.report(now)
            self.stateful_sets.step(now)
            self.endpoints.step()
            self.autoscalers.step(now)

    def start(self, interval: float) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="sandbox-controllers", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.step()
            except Exception:  # a bad object must not stop the cluster from moving
                log.exception("sandbox controllers: tick failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
