"""The Celery half of the `queue-backlog` incident: backtests arriving on the real queue faster
than two workers take them, and slower than eight do.

Each backtest holds a worker process (prefork, concurrency 1) for 0.05 to 0.1 s. Measured on the
2-core machine this was written on, with a sandbox ticking every 0.05 s in the same process: two
workers take about 26 tasks/s, eight about 100 or more. The steady producer publishes
PRODUCER_RATE (50) a second, between the two: after topping the queue up to START_DEPTH (above
the rehearsal alarm) it grows by some 24 a second with two workers until its bound (MAX_DEPTH,
AlphaSwarm's submit API refusing new backtests while the queue is that deep) and holds there; with
eight it drains at some 50 a second, under the alarm within about ten seconds of the workers
being up, and stays near empty. So the incident lasts until the workers are scaled, whenever
anyone looks, and it cannot run away: MAX_DEPTH caps the queue and MAX_LIFETIME_SECONDS the
producer's life.
`injections.heal`, the worker pool's stop and the server's stop end it.

`enqueue_backlog` (and `backlog_hook`, its hook) is a one-off burst instead, for tests that want
a fixed amount of work and a queue that drains to empty.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import redis

from sandbox import celery_app
from sandbox.backlog import REHEARSAL_QUEUE_DEPTH_ALARM
from sandbox.cluster import SandboxCluster

log = logging.getLogger(__name__)

__all__ = [
    "REHEARSAL_QUEUE_DEPTH_ALARM",
    "BacklogProducer",
    "SteadyBacklog",
    "backlog_hook",
    "enqueue_backlog",
]

STRATEGIES = ("momentum-v3", "mean-reversion-v2", "pairs-v1")
MIN_SECONDS, MAX_SECONDS = 0.05, 0.1  # how long one backtest holds its worker
PRODUCER_RATE = 50.0  # backtests a second: more than 2 workers take (~26/s), less than 8 (>100/s)
START_DEPTH = 150
MAX_DEPTH = 600
MAX_LIFETIME_SECONDS = 3600.0


def _backtest(rng: random.Random, run_id: int) -> tuple[list[int], dict[str, object]]:
    return [run_id], {
        "strategy": rng.choice(STRATEGIES),
        "seconds": round(rng.uniform(MIN_SECONDS, MAX_SECONDS), 3),
    }


def enqueue_backlog(
    broker_url: str,
    *,
    count: int = 200,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    seed: int = 0,
) -> list[str]:
    """Publish `count` backtests to the `celery` queue at once; returns their task ids."""
    rng = random.Random(seed)
    app = celery_app.make_app(broker_url)
    try:
        with app.producer_or_acquire() as producer:
            return [
                app.send_task(
                    celery_app.BACKTEST,
                    args=[4000 + i],
                    kwargs={
                        "strategy": rng.choice(STRATEGIES),
                        "seconds": round(rng.uniform(min_seconds, max_seconds), 3),
                    },
                    queue=celery_app.QUEUE,
                    producer=producer,
                ).id
                for i in range(count)
            ]
    finally:
        app.close()


def backlog_hook(broker_url: str, *, count: int = 200) -> Callable[[SandboxCluster], None]:
    """A `SandboxCluster.queue_backlog_hook` that enqueues one burst of `count` backtests."""

    def hook(cluster: SandboxCluster) -> None:
        enqueue_backlog(broker_url, count=count)

    return hook


class BacklogProducer:
    """Tops the queue up to `start_depth`, then publishes `rate` backtests a second (in batches
    every `interval`) while the queue is under `max_depth`, for at most `max_seconds`."""

    def __init__(
        self,
        broker_url: str,
        *,
        rate: float = PRODUCER_RATE,
        start_depth: int = START_DEPTH,
        max_depth: int = MAX_DEPTH,
        max_seconds: float = MAX_LIFETIME_SECONDS,
        interval: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.broker_url = broker_url
        self.rate, self.start_depth, self.max_depth = rate, start_depth, max_depth
        self.max_seconds, self.interval = max_seconds, interval
        self.published = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-backlog", daemon=True)

    def start(self) -> BacklogProducer:
        """Start publishing; returns once the queue holds its starting depth."""
        self._thread.start()
        self._started.wait(timeout=10)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        app = celery_app.make_app(self.broker_url)
        try:
            with (
                redis.Redis.from_url(self.broker_url, socket_timeout=2) as queue,
                app.producer_or_acquire() as producer,
            ):

                def publish(count: int) -> None:
                    for _ in range(count):
                        args, kwargs = _backtest(self._rng, 4000 + self.published)
                        app.send_task(
                            celery_app.BACKTEST,
                            args=args,
                            kwargs=kwargs,
                            queue=celery_app.QUEUE,
                            producer=producer,
                        )
                        self.published += 1

                publish(max(self.start_depth - self._depth(queue), 0))
                self._started.set()
                self._steady(queue, publish)
        except Exception:  # the broker went away (the sandbox is stopping): nothing to feed
            log.warning("sandbox backlog producer stopped", exc_info=True)
        finally:
            self._started.set()
            app.close()

    def _steady(self, queue: redis.Redis, publish: Callable[[int], None]) -> None:
        began = last = time.monotonic()
        owed = 0.0
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            if now - began > self.max_seconds:
                return
            owed += self.rate * (now - last)
            last = now
            batch = int(owed)
            owed -= batch
            if batch and self._depth(queue) < self.max_depth:
                publish(batch)

    @staticmethod
    def _depth(queue: redis.Redis) -> int:
        return int(queue.llen(celery_app.QUEUE))


class SteadyBacklog:
    """The `SandboxCluster.queue_backlog_hook` a worker pool installs: each injection starts a
    producer (replacing one still running), registered with the cluster so `injections.heal`
    stops it; `stop` ends every producer this hook started."""

    def __init__(
        self,
        broker_url: str,
        *,
        rate: float = PRODUCER_RATE,
        start_depth: int = START_DEPTH,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self.broker_url = broker_url
        self.rate, self.start_depth, self.max_depth = rate, start_depth, max_depth
        self._producers: list[BacklogProducer] = []

    def __call__(self, cluster: SandboxCluster) -> None:
        self.stop()
        producer = BacklogProducer(
            self.broker_url, rate=self.rate, start_depth=self.start_depth, max_depth=self.max_depth
        ).start()
        self._producers.append(producer)
        cluster.background.append(producer)

    def stop(self) -> None:
        while self._producers:
            self._producers.pop().stop()
