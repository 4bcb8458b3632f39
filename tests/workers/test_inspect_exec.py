"""`kubectl exec deploy/alphaswarm-worker -- celery ... inspect active` shows the real workers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from sandbox import execs
from sandbox.celery_backlog import enqueue_backlog
from sandbox.cluster import SandboxCluster
from sandbox.resources import POD
from sandbox.server import SandboxServer
from sandbox.topology import seed
from tasks.adapters.exec_commands import celery_inspect
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.adapters.workers import CeleryWorkers
from tests.workers.conftest import NS, ready_worker_pods, wait_for_workers, wait_until

INSPECT = ["celery", "-A", "alphaswarm.tasks.celery_app", "inspect", "active"]
DECLARED_INSPECT = celery_inspect("alphaswarm.tasks.celery_app", "active")


def _busy(workers: CeleryWorkers, redis_url: str, count: int) -> None:
    # 20 s of work per worker: `celery inspect active` starts a Celery process of its own, which
    # took over 5 s on a loaded machine and found the workers idle when the tasks took 0.5 s.
    enqueue_backlog(redis_url, count=20, min_seconds=2.0, max_seconds=2.0)
    wait_until(
        lambda: len(workers.active_tasks(timeout=0.5).busy_workers) == count,
        timeout=20,
        what="every worker busy",
    )


def test_inspect_active_exec_in_deploy_is_the_real_celery_output(
    api_client: client.ApiClient, workers: CeleryWorkers, redis_url: str
) -> None:
    """Through the cluster adapter (the official client's exec stream), as scenario C calls it."""
    wait_for_workers(workers, api_client, 2)
    _busy(workers, redis_url, 2)
    cluster = KubernetesCluster(api_client=api_client)

    result = cluster.exec_in_deployment(NS, "alphaswarm-worker", DECLARED_INSPECT)

    assert result.exit_code == 0, result.stderr
    for pod in ready_worker_pods(api_client):
        assert f"->  celery@{pod}: OK" in result.stdout
        assert f"'hostname': 'celery@{pod}'" in result.stdout
    assert "'name': 'alphaswarm.tasks.backtest'" in result.stdout
    assert "2 nodes online." in result.stdout


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_exec_deploy_inspect_active(
    worker_sandbox: SandboxServer,
    api_client: client.ApiClient,
    workers: CeleryWorkers,
    redis_url: str,
    tmp_path: Path,
) -> None:
    wait_for_workers(workers, api_client, 2)
    _busy(workers, redis_url, 2)
    kubeconfig = worker_sandbox.write_kubeconfig(tmp_path / "kubeconfig")

    done = subprocess.run(
        [
            "kubectl",
            f"--kubeconfig={kubeconfig}",
            "exec",
            "-n",
            NS,
            "deploy/alphaswarm-worker",
            "--",
            *INSPECT,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for pod in ready_worker_pods(api_client):
        assert f"celery@{pod}: OK" in done.stdout
    assert "2 nodes online." in done.stdout


def test_without_a_pool_the_canned_answer_stays() -> None:
    cluster = SandboxCluster()
    seed(cluster)
    execs.install(cluster)
    pods = ready_worker_pods_in(cluster)

    result = cluster.runtime.exec(NS, pods[0], "worker", INSPECT)

    assert result.exit_code == 0
    assert "2 nodes online." in result.stdout


def ready_worker_pods_in(cluster: SandboxCluster) -> list[str]:
    found, _ = cluster.store.list(POD, NS, labels="app=alphaswarm-worker")
    return [p["metadata"]["name"] for p in found]
