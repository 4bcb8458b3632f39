"""Fixtures for the real-Celery tests: a sandbox whose alphaswarm-worker pods are backed by real
worker processes, and the workers adapter. The session's redis-server and the check that nothing
these tests started outlives them live in `tests.celery_plugin`, shared with the flow tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from pydantic import SecretStr

from sandbox.server import SandboxServer
from sandbox.worker_pool import ROLE as WORKER_ROLE
from sandbox.worker_pool import WorkerPool
from tasks.adapters.workers import CeleryWorkers
from tasks.settings import CeleryBroker
from tests.celery_plugin import assert_gone, wait_until

NS = "alphaswarm"
WORKER = "alphaswarm-worker"


@pytest.fixture
def worker_sandbox(redis_url: str, tmp_path: Path) -> Iterator[SandboxServer]:
    """A seeded sandbox (alphaswarm-worker at 2 replicas) with real workers attached."""
    pool = WorkerPool(redis_url, log_dir=tmp_path / "workers", grace_seconds=3.0)
    with SandboxServer(worker_pool=pool, tick_seconds=0.1) as server:
        yield server
    assert_gone(WORKER_ROLE)


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
