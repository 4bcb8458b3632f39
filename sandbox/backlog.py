"""The `queue-backlog` incident's queue without a broker: the Celery `backtests` list on the Redis
volume, a counter that producers fill and ready workers drain, tick by tick.

Its numbers are chosen so the incident persists until the workers are scaled, whatever the tick
and whenever one looks: arrivals (12 a tick) outpace two workers (4 a tick each, slowed by the
rate-limited dependencies they retry against) and not eight; break-even is three. From its
starting depth, above the rehearsal alarm, the queue grows 4 a tick with two workers until the
producers' bound (MAX_DEPTH less what two workers take in a tick, reached in 70 ticks: 35 s at
`sandbox up`'s 0.5 s tick, 3.5 s at the tests' 0.05 s) and stays there; with eight it falls 20 a
tick, under the alarm within 15 ticks of the new workers becoming ready and to zero soon after.
The bound is AlphaSwarm's submit API refusing new backtests (503) while the queue is that deep: a
real queue never grows without limit, and a rehearsal that waited an hour must still drain in
seconds once scaled.

`sandbox.celery_backlog` is the same incident on a real broker with real workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.cluster import SandboxCluster
from sandbox.resources import POD
from sandbox.volumes import redis_claim

NS = "alphaswarm"
SIMULATED_QUEUE = "backtests"  # the list `redis-cli llen` reads; AlphaSwarm's backtest queue
# Production pages at 1000 waiting messages; a rehearsal's queues stay in the hundreds (so eight
# workers drain them in seconds), so the flows pointed at a sandbox page at 100.
REHEARSAL_QUEUE_DEPTH_ALARM = 100
START_DEPTH = 120  # where the simulated queue is when the incident is injected
MAX_DEPTH = 400


@dataclass
class SimulatedBacklog:
    """Producers add `arrivals` a tick (no further than `max_depth`); then each serving worker
    takes `per_worker`."""

    arrivals: int = 12
    per_worker: int = 4
    max_depth: int = MAX_DEPTH
    app: str = "alphaswarm-worker"

    def __call__(self, cluster: SandboxCluster, now: float) -> None:
        claim = redis_claim(cluster, NS)
        if claim is None:
            return
        pods, _ = cluster.store.list(POD, NS, labels=f"app={self.app}")
        workers = sum(1 for p in pods if cluster.behaviour.serving(p))
        depth = cluster.volumes.get(NS, claim, SIMULATED_QUEUE)
        depth = min(depth + self.arrivals, self.max_depth) - self.per_worker * workers
        cluster.volumes.set(NS, claim, SIMULATED_QUEUE, max(depth, 0))


def start_backlog(cluster: SandboxCluster) -> None:
    """Fill the simulated queue to its starting depth and let it follow the workers."""
    claim = redis_claim(cluster, NS)
    if claim is not None:
        cluster.volumes.set(NS, claim, SIMULATED_QUEUE, START_DEPTH)
    cluster.effects["queue-backlog"] = SimulatedBacklog()
