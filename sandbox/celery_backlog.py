"""The Celery half of the `queue-backlog` incident: a burst of backtests on the real queue.

Each task holds a worker process for 0.05 to 0.1 s, so 200 of them keep two workers busy for
several seconds and eight workers for about a quarter of that: scaling out visibly helps, which
is what scenario C's verification has to see.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sandbox import celery_app
from sandbox.cluster import SandboxCluster

STRATEGIES = ("momentum-v3", "mean-reversion-v2", "pairs-v1")
# Production pages at 1000 waiting messages; a rehearsal's backlog is a few hundred short tasks
# (so 8 workers drain it in seconds), so the flows pointed at a sandbox page at 100.
REHEARSAL_QUEUE_DEPTH_ALARM = 100


def enqueue_backlog(
    broker_url: str,
    *,
    count: int = 200,
    min_seconds: float = 0.05,
    max_seconds: float = 0.1,
    seed: int = 0,
) -> list[str]:
    """Publish `count` backtests to the `celery` queue; returns their task ids."""
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
    """A `SandboxCluster.queue_backlog_hook` that enqueues the backlog on `broker_url`."""

    def hook(cluster: SandboxCluster) -> None:
        enqueue_backlog(broker_url, count=count)

    return hook
