"""The pool runs one real worker process per ready alphaswarm-worker pod and follows scaling."""

from __future__ import annotations

import os
import signal

from kubernetes import client

from sandbox.processes import owned_processes
from sandbox.worker_pool import ROLE, WorkerPool
from tasks.adapters.workers import CeleryWorkers
from tests.workers.conftest import (
    NS,
    ready_worker_pods,
    scale_workers,
    wait_for_workers,
    wait_until,
)


def _pool_matches_pods(pool: WorkerPool, api: client.ApiClient) -> bool:
    return pool.hostnames() == [f"celery@{p}" for p in ready_worker_pods(api)]


def test_one_worker_per_ready_pod_follows_scale_up_and_down(
    pool: WorkerPool, api_client: client.ApiClient, workers: CeleryWorkers
) -> None:
    online = wait_for_workers(workers, api_client, 2)
    assert online == pool.hostnames()

    scale_workers(api_client, 8)
    online = wait_for_workers(workers, api_client, 8)
    assert online == pool.hostnames()
    assert len(set(pool.pids().values())) == 8

    scale_workers(api_client, 2)
    wait_until(lambda: len(pool.hostnames()) == 2, timeout=20, what="pool back to 2")
    wait_for_workers(workers, api_client, 2)
    # Prefork: one parent and one child per worker; the stopped ones are gone entirely.
    wait_until(lambda: len(owned_processes(role=ROLE)) == 4, timeout=20, what="4 processes")


def test_a_deleted_pod_or_a_dead_process_gets_a_fresh_worker(
    pool: WorkerPool, api_client: client.ApiClient, workers: CeleryWorkers
) -> None:
    wait_for_workers(workers, api_client, 2)
    victim = ready_worker_pods(api_client)[0]
    client.CoreV1Api(api_client).delete_namespaced_pod(victim, NS, grace_period_seconds=0)

    online = wait_for_workers(workers, api_client, 2)
    assert f"celery@{victim}" not in online
    wait_until(lambda: _pool_matches_pods(pool, api_client), timeout=20, what="pool follows")

    # A worker that dies (OOM-killed, say) is started again for the same pod, like a container.
    pod, pid = sorted(pool.pids().items())[0]
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: pool.pids().get(pod) not in (None, pid), timeout=20, what="restart")
    wait_for_workers(workers, api_client, 2)
