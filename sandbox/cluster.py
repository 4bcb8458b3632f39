"""One simulated cluster: the parts the API layer serves and the controllers move."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.behaviour import Behaviour
from sandbox.control_plane import ControlPlane
from sandbox.journal import Faults, Journal
from sandbox.runtime import Runtime
from sandbox.store import Store
from sandbox.volumes import VolumeData

# A per-tick consequence of an injected incident: (cluster, now) -> None.
Effect = Callable[["SandboxCluster", float], None]


class Background(Protocol):
    """Something an incident runs beside the controllers, on its own thread."""

    def stop(self) -> None: ...


class JobRunner(Protocol):
    """Runs batch/v1 Jobs and their pods as real processes (`sandbox.jobs.attach`)."""

    def runs(self, pod: Mapping[str, Any]) -> bool: ...

    def step(self, now: float) -> None: ...


@dataclass
class SandboxCluster:
    store: Store = field(default_factory=Store)
    runtime: Runtime = field(default_factory=Runtime)
    journal: Journal = field(default_factory=Journal)
    faults: Faults = field(default_factory=Faults)
    # What the workloads do when they run; incidents flip it, controllers consult it.
    behaviour: Behaviour = field(default_factory=Behaviour)
    # Fills the real Celery queue when the `queue-backlog` incident is injected; set by a
    # sandbox.worker_pool.WorkerPool attached to this cluster, None without real workers.
    queue_backlog_hook: Callable[[SandboxCluster], None] | None = None
    # Consequences of injected incidents that follow the cluster's state (e.g. pods crash while
    # the HPA thrashes), run at the start of every controller tick; keyed by incident name.
    effects: dict[str, Effect] = field(default_factory=dict)
    # The AlphaSwarm control plane served under /manage (token, audit rows, rate limit).
    control_plane: ControlPlane = field(default_factory=ControlPlane)
    # What the stateful stores hold on their PersistentVolumeClaims.
    volumes: VolumeData = field(default_factory=VolumeData)
    # Threads injected incidents started (the producer feeding the real Celery queue);
    # `incidents.heal` and the server's stop end them.
    background: list[Background] = field(default_factory=list)
    # Jobs whose pods run as real local processes (a Prefect Kubernetes worker's flow runs); the
    # kubelet steps it every tick and leaves the pods it runs to it. None: Jobs do not run.
    jobs: JobRunner | None = None
    # The real-cluster conditions (`sandbox.conditions`) the cluster was seeded with, by name.
    conditions: tuple[str, ...] = ()

    def stop_background(self) -> None:
        while self.background:
            self.background.pop().stop()
