"""A real backlog drains measurably faster once alphaswarm-worker runs 8 replicas instead of 2,
and the `queue-backlog` incident's steady producer keeps the queue above the alarm for as long as
two workers serve it and lets eight bring it under.

Drain times are compared, never pinned: two workers cannot beat the sum of the task sleeps split
two ways (a hard lower bound), and eight workers must beat two and be seen busy at once.
"""

from __future__ import annotations

import threading
import time

from kubernetes import client
from pydantic import SecretStr

from sandbox import injections
from sandbox.backlog import REHEARSAL_QUEUE_DEPTH_ALARM
from sandbox.celery_backlog import PRODUCER_RATE, START_DEPTH, BacklogProducer, enqueue_backlog
from sandbox.cluster import SandboxCluster
from sandbox.redis_cli import SANDBOX_REDIS_PASSWORD
from sandbox.server import SandboxServer
from sandbox.worker_pool import WorkerPool
from tasks.adapters.workers import CeleryWorkers
from tasks.settings import CeleryBroker
from tests.workers.conftest import NS, scale_workers, wait_for_workers, wait_until

QUEUE = CeleryBroker().queues[0]
TASKS = 100
MIN_SECONDS, MAX_SECONDS = 0.05, 0.1


def _drain_seconds(workers: CeleryWorkers, timeout: float = 40.0) -> float:
    start = time.monotonic()
    wait_until(lambda: workers.queue_depth(QUEUE) == 0, timeout=timeout, interval=0.05)
    return time.monotonic() - start


class BusySampler:
    """Samples `inspect active` on its own connection while the queue drains."""

    def __init__(self, redis_url: str) -> None:
        self.most_busy: tuple[str, ...] = ()
        self._url = redis_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with CeleryWorkers(CeleryBroker(broker_url=SecretStr(self._url))) as workers:
            while not self._stop.is_set():
                busy = workers.active_tasks(timeout=0.3).busy_workers
                if len(busy) > len(self.most_busy):
                    self.most_busy = busy

    def __enter__(self) -> BusySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_backlog_drains_faster_with_eight_workers_than_with_two(
    pool: WorkerPool, api_client: client.ApiClient, workers: CeleryWorkers, redis_url: str
) -> None:
    wait_for_workers(workers, api_client, 2)
    enqueue_backlog(redis_url, count=TASKS, min_seconds=MIN_SECONDS, max_seconds=MAX_SECONDS)
    # Most of the backlog is still queued: two workers hold 2 each and finish one in 0.05-0.1 s,
    # so a slow enqueue (a busy machine, the suite's other worker) lets them drain a few.
    assert workers.queue_depth(QUEUE) > TASKS * 3 // 4
    two = _drain_seconds(workers)

    scale_workers(api_client, 8)
    wait_for_workers(workers, api_client, 8)
    with BusySampler(redis_url) as sampler:
        enqueue_backlog(redis_url, count=TASKS, min_seconds=MIN_SECONDS, max_seconds=MAX_SECONDS)
        eight = _drain_seconds(workers)
        wait_until(lambda: len(sampler.most_busy) > 2, timeout=10, what=">2 busy workers")

    print(f"\n{TASKS} tasks drained in {two:.2f} s by 2 workers, {eight:.2f} s by 8")
    # Two workers sleep at least TASKS * MIN_SECONDS / 2 seconds, minus the last few in flight.
    assert two >= (TASKS - 4) * MIN_SECONDS / 2
    assert eight < two
    assert set(sampler.most_busy) <= set(pool.hostnames())


def test_queue_backlog_hook_starts_a_bounded_producer(
    redis_url: str, workers: CeleryWorkers
) -> None:
    """Attaching a pool (no pods, so no processes) is what arms the incident's Celery half: the
    queue is topped up above the alarm at once, keeps filling with nobody to drain it, stops at
    the producers' bound, and the producer ends with the pool."""
    cluster = SandboxCluster()
    pool = WorkerPool(redis_url)
    pool.attach(cluster)
    pool.backlog.max_depth = START_DEPTH + 40
    assert cluster.queue_backlog_hook is pool.backlog

    cluster.queue_backlog_hook(cluster)

    assert workers.queue_depth(QUEUE) >= START_DEPTH > REHEARSAL_QUEUE_DEPTH_ALARM
    (producer,) = cluster.background
    assert isinstance(producer, BacklogProducer) and producer.running
    wait_until(lambda: workers.queue_depth(QUEUE) >= START_DEPTH + 40, timeout=10)
    time.sleep(0.5)
    assert workers.queue_depth(QUEUE) <= START_DEPTH + 40 + PRODUCER_RATE * 0.1 + 1
    pool.stop()
    assert not producer.running


def test_the_incident_persists_with_two_workers_and_yields_to_eight(
    worker_sandbox: SandboxServer, api_client: client.ApiClient, workers: CeleryWorkers
) -> None:
    """Whenever one looks, the queue is above the alarm while two workers serve it; scaled to
    eight it falls under and stays there; healed, the producer stops. `redis-cli llen` in the
    Redis pod reads the same real list as the broker."""
    cluster = worker_sandbox.cluster
    wait_for_workers(workers, api_client, 2)
    injections.inject(cluster, "queue-backlog")
    two = _sample(workers, seconds=4.0)
    llen = ["redis-cli", "-a", SANDBOX_REDIS_PASSWORD, "llen", QUEUE]
    in_pod = cluster.runtime.exec(NS, "redis-master-0", "redis", llen)
    broker = workers.queue_depth(QUEUE)
    assert min(two) > REHEARSAL_QUEUE_DEPTH_ALARM and two[-1] > two[0]
    assert in_pod.exit_code == 0 and abs(int(in_pod.stdout) - broker) <= 2 * PRODUCER_RATE * 0.1

    scale_workers(api_client, 8)
    wait_for_workers(workers, api_client, 8)
    scaled = time.monotonic()
    wait_until(
        lambda: workers.queue_depth(QUEUE) < REHEARSAL_QUEUE_DEPTH_ALARM // 4,
        timeout=40,
        what="eight workers bringing the queue well under the alarm",
    )
    drained = time.monotonic() - scaled
    eight = _sample(workers, seconds=2.0)  # the producer still runs: eight keep up with it
    print(
        f"\nqueue with 2 workers: {two[0]} -> {two[-1]} in 4 s; with 8: under 25 "
        f"{drained:.1f} s after the scale, then at most {max(eight)}"
    )
    assert max(eight) < REHEARSAL_QUEUE_DEPTH_ALARM

    (producer,) = cluster.background
    assert isinstance(producer, BacklogProducer) and producer.running
    injections.heal(cluster)
    assert cluster.background == [] and not producer.running
    wait_until(lambda: workers.queue_depth(QUEUE) == 0, timeout=10, what="the queue drained")


def _sample(workers: CeleryWorkers, *, seconds: float, every: float = 0.2) -> list[int]:
    depths = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        depths.append(workers.queue_depth(QUEUE))
        time.sleep(every)
    return depths
