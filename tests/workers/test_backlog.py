"""A real backlog drains measurably faster once alphaswarm-worker runs 8 replicas instead of 2.

Drain times are compared, never pinned: two workers cannot beat the sum of the task sleeps split
two ways (a hard lower bound), and eight workers must beat two and be seen busy at once.
"""

from __future__ import annotations

import threading
import time

from kubernetes import client
from pydantic import SecretStr

from sandbox.celery_backlog import enqueue_backlog
from sandbox.cluster import SandboxCluster
from sandbox.worker_pool import WorkerPool
from tasks.adapters.workers import CeleryWorkers
from tasks.settings import CeleryBroker
from tests.workers.conftest import scale_workers, wait_for_workers, wait_until

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
    assert workers.queue_depth(QUEUE) > TASKS - 10  # two workers hold at most 2 each
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


def test_queue_backlog_hook_fills_the_real_queue(redis_url: str, workers: CeleryWorkers) -> None:
    """Attaching a pool (no pods, so no processes) is what arms the incident's Celery half."""
    cluster = SandboxCluster()
    pool = WorkerPool(redis_url)
    pool.attach(cluster)
    assert cluster.queue_backlog_hook is not None

    cluster.queue_backlog_hook(cluster)

    assert workers.queue_depth(QUEUE) == 200
    pool.stop()
