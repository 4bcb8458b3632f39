"""Fixtures for the real-Celery tests: one redis-server per session, a sandbox whose
alphaswarm-worker pods are backed by real worker processes, the workers adapter, and a check
that nothing these tests started outlives them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kubernetes import client, config
from pydantic import SecretStr

from sandbox.processes import owned_processes
from sandbox.redis_server import RedisServer
from sandbox.server import SandboxServer
from sandbox.worker_pool import ROLE as WORKER_ROLE
from sandbox.worker_pool import WorkerPool
from tasks.adapters.workers import CeleryWorkers
from tasks.settings import CeleryBroker

NS = "alphaswarm"
WORKER = "alphaswarm-worker"


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = ""
) -> None:
    """Poll `predicate` until it holds; generous deadlines keep a loaded machine from flaking."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def _assert_gone(role: str | None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := owned_processes(role=role)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left running ({role or 'any role'}): {left}"


@pytest.fixture(scope="session")
def no_orphans() -> Iterator[None]:
    """After the session: no redis-server, worker (prefork children included) or CLI left."""
    yield
    _assert_gone(None)


@pytest.fixture(scope="session")
def redis_server(no_orphans: None) -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for each test."""
    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    return redis_server.url


@pytest.fixture
def worker_sandbox(redis_url: str, tmp_path: Path) -> Iterator[SandboxServer]:
    """A seeded sandbox (alphaswarm-worker at 2 replicas) with real workers attached."""
    pool = WorkerPool(redis_url, log_dir=tmp_path / "workers", grace_seconds=3.0)
    with SandboxServer(worker_pool=pool, tick_seconds=0.1) as server:
        yield server
    _assert_gone(WORKER_ROLE)


@pytest.fixture
def pool(worker_sandbox: SandboxServer) -> WorkerPool:
    assert worker_sandbox.worker_pool is not None
    return worker_sandbox.worker_pool


@pytest.fixture
def api_client(worker_sandbox: SandboxServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config_dict(worker_sandbox.kubeconfig())
    yield api
    api.close()


@pytest.fixture
def workers(redis_url: str) -> Iterator[CeleryWorkers]:
    with CeleryWorkers(CeleryBroker(broker_url=SecretStr(redis_url))) as adapter:
        yield adapter


def ready_worker_pods(api: client.ApiClient) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"app={WORKER}").items
    return sorted(
        p.metadata.name
        for p in pods
        if not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    )


def scale_workers(api: client.ApiClient, replicas: int) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment_scale(
        WORKER, NS, {"spec": {"replicas": replicas}}
    )


def wait_for_workers(
    workers: CeleryWorkers, api: client.ApiClient, count: int, *, timeout: float = 40.0
) -> list[str]:
    """Wait until `count` pods are ready and exactly their workers answer a ping."""
    seen: list[str] = []

    def settled() -> bool:
        pods = ready_worker_pods(api)
        online = workers.workers_online(timeout=0.5).hostnames
        seen[:] = list(online)
        return len(pods) == count and list(online) == sorted(f"celery@{p}" for p in pods)

    wait_until(settled, timeout=timeout, interval=0.2, what=f"{count} workers online")
    return seen
