"""danihodovic/celery-exporter's two series the alert rules read: `celery_queue_length{queue_name}`
and `celery_worker_up{hostname}`.

The queue length comes from wherever the sandbox keeps the queue. With real Celery workers
attached (`sandbox.worker_pool.WorkerPool.attach` installs a `SteadyBacklog` hook that knows the
broker's URL) it is the real broker's list, `llen` as the exporter reads it; without them it is
the simulated backlog on the Redis volume (`sandbox.backlog`), for each queue the worker
Deployment consumes (its CELERY_QUEUES). kombu's Redis transport keeps priorities 3, 6 and 9 on
lists of their own (`celery\\x06\\x163`...); they are added in, so a prioritised backlog is not
hidden (the real exporter reads the priority-0 list only, its issue #272; the sandbox's Celery
app sends no priorities, so both agree here). While no Redis pod serves, the exporter cannot
reach its broker and, like the real one, its gauges keep the last lengths it read.

`hostname` is the part of the worker's Celery node name after `@` (the exporter's
`get_hostname`), which for the pool's `celery@<pod>` workers is the pod's name. A worker is up
(1) while its pod runs, is Ready and is not crash-looping (`Behaviour.serving`), as a worker
that sends heartbeats; 0 otherwise, as the exporter marks a worker that went offline.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import redis

from sandbox.backlog import SIMULATED_QUEUE
from sandbox.cluster import SandboxCluster
from sandbox.exposition import Family, gauge
from sandbox.redis_cli import redis_serving
from sandbox.resources import DEPLOYMENT, POD
from sandbox.volumes import redis_claim

NS = "alphaswarm"
WORKER_APP = "alphaswarm-worker"
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: queue + separator + priority
PRIORITY_STEPS = (3, 6, 9)  # the lists beside the queue's own (priority 0)
BROKER_TIMEOUT_SECONDS = 1.0


def broker_url(cluster: SandboxCluster) -> str | None:
    """The real broker's URL, when a worker pool is attached to the cluster."""
    url = getattr(cluster.queue_backlog_hook, "broker_url", None)
    return url if isinstance(url, str) else None


def consumed_queues(cluster: SandboxCluster) -> tuple[str, ...]:
    """The queues the worker Deployment's CELERY_QUEUES names (the simulated backlog's list
    first among them), or the simulated one alone."""
    deployment = cluster.store.get(DEPLOYMENT, NS, WORKER_APP)
    containers = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in containers.get("containers") or []:
        for var in container.get("env") or []:
            if var.get("name") == "CELERY_QUEUES" and var.get("value"):
                return tuple(q.strip() for q in str(var["value"]).split(",") if q.strip())
    return (SIMULATED_QUEUE,)


def _broker_lengths(url: str, queues: tuple[str, ...]) -> dict[str, int] | None:
    lanes = [
        (q, name)
        for q in queues
        for name in (q, *(f"{q}{PRIORITY_SEPARATOR}{p}" for p in PRIORITY_STEPS))
    ]
    try:
        with redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT_SECONDS) as broker:
            pipe = broker.pipeline(transaction=False)
            for _, name in lanes:
                pipe.llen(name)
            counts = pipe.execute()
    except redis.RedisError:
        return None
    lengths = dict.fromkeys(queues, 0)
    for (queue, _), count in zip(lanes, counts, strict=True):
        lengths[queue] += int(count)
    return lengths


def _simulated_lengths(cluster: SandboxCluster, queues: tuple[str, ...]) -> dict[str, int] | None:
    claim = redis_claim(cluster, NS)
    if claim is None:
        return None
    return {q: cluster.volumes.get(NS, claim, q) for q in queues}


class CeleryExporter:
    """Remembers the last queue lengths it read, to report them while the broker is down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}

    def queue_lengths(self, cluster: SandboxCluster) -> dict[str, int]:
        """Blocking (it may ask the real broker): call it off the event loop."""
        url = broker_url(cluster)
        read: dict[str, int] | None = None
        if redis_serving(cluster, NS):
            if url is not None:
                from sandbox.celery_app import QUEUE  # imported with the worker pool already

                read = _broker_lengths(url, (QUEUE,))
            else:
                read = _simulated_lengths(cluster, consumed_queues(cluster))
        with self._lock:
            if read is not None:
                self._last.update(read)
            return dict(self._last)

    def families(self, cluster: SandboxCluster) -> list[Family]:
        length = gauge("celery_queue_length", "The number of message in broker queue.")
        for queue, count in sorted(self.queue_lengths(cluster).items()):
            length.add(count, queue_name=queue)
        up = gauge("celery_worker_up", "Indicates if a worker has recently sent a heartbeat.")
        pods, _ = cluster.store.list(POD, NS, labels=f"app={WORKER_APP}")
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            up.add(1 if _heartbeating(cluster, pod) else 0, hostname=pod["metadata"]["name"])
        return [length, up]


def _heartbeating(cluster: SandboxCluster, pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and cluster.behaviour.serving(pod)
