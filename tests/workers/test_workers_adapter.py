"""`CeleryWorkers` against a real redis-server and real workers: typed facts, sorted errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from kubernetes import client
from pydantic import SecretStr

from sandbox.celery_backlog import enqueue_backlog
from sandbox.redis_server import RedisServer
from sandbox.worker_pool import WorkerPool
from tasks.adapters.errors import PermanentError, TransientError
from tasks.adapters.workers import CeleryWorkers, Workers
from tasks.settings import CeleryBroker
from tests.workers.conftest import wait_for_workers, wait_until


def _adapter(url: str) -> CeleryWorkers:
    return CeleryWorkers(CeleryBroker(broker_url=SecretStr(url)), socket_timeout=2.0)


def test_queue_depth_counts_every_priority_lane(redis_url: str, workers: CeleryWorkers) -> None:
    with redis.Redis.from_url(redis_url) as r:
        r.rpush("reports", "a", "b")
        r.rpush("reports\x06\x163", "c")
        r.rpush("reports\x06\x169", "d")
        r.rpush("other", "e")

    assert workers.queue_depth("reports") == 4
    assert workers.queue_depth("empty") == 0


def test_active_tasks_names_each_busy_worker_and_its_task(
    pool: WorkerPool, api_client: client.ApiClient, workers: CeleryWorkers, redis_url: str
) -> None:
    checked: Workers = workers  # the implementation satisfies the protocol
    wait_for_workers(workers, api_client, 2)
    enqueue_backlog(redis_url, count=10, min_seconds=0.6, max_seconds=0.6)
    wait_until(
        lambda: len(checked.active_tasks(timeout=0.5).busy_workers) == 2, timeout=20, what="busy"
    )

    active = checked.active_tasks(timeout=1.0)

    assert [w.hostname for w in active.workers] == pool.hostnames()
    task = next(t for w in active.workers for t in w.tasks)
    assert task.name == "alphaswarm.tasks.backtest"
    assert task.args.startswith("40") and "strategy=" in task.args
    assert task.time_start is not None
    assert abs(datetime.now(UTC) - task.time_start) < timedelta(minutes=1)
    assert task.worker_pid is not None
    assert checked.workers_online(timeout=1.0).count == 2


def test_no_workers_means_empty_answers_not_errors(workers: CeleryWorkers) -> None:
    assert workers.active_tasks(timeout=0.2).workers == ()
    assert workers.workers_online(timeout=0.2).hostnames == ()


def test_a_broker_that_went_down_is_a_transient_error() -> None:
    with RedisServer() as server:
        url = server.url
        with _adapter(url) as workers:
            assert workers.queue_depth("celery") == 0
            server.stop()
            with pytest.raises(TransientError, match=r"Connection refused|connecting"):
                workers.queue_depth("celery")
            with pytest.raises(TransientError):
                workers.active_tasks(timeout=0.2)
            with pytest.raises(TransientError):
                workers.workers_online(timeout=0.2)


def test_errors_never_quote_the_broker_password(redis_server: RedisServer) -> None:
    dead = "redis://:s3cret-broker-password@127.0.0.1:1/0"
    with _adapter(dead) as workers:
        with pytest.raises(TransientError) as raised:
            workers.queue_depth("celery")
        with pytest.raises(TransientError) as raised_control:
            workers.workers_online(timeout=0.2)
    for error in (raised.value, raised_control.value):
        assert "s3cret" not in str(error)
        assert error.operation in {"queue_depth", "workers_online"}


def test_a_malformed_broker_url_is_permanent() -> None:
    with (
        _adapter("http://:s3cret@example.invalid/0") as workers,
        pytest.raises(PermanentError) as raised,
    ):
        workers.queue_depth("celery")
    assert "s3cret" not in str(raised.value)
