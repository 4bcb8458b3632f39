"""batch/v1 Jobs (`sandbox.jobs`): the controller's pods and status, and Job pods run as real
local processes whose output is the pod's log. Driven tick by tick with `Controllers.step()`,
on the wall clock, since the processes are real."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config

from sandbox import jobs as sandbox_jobs
from sandbox.cluster import SandboxCluster
from sandbox.controllers import Controllers
from sandbox.processes import owned_processes
from sandbox.resources import EVENT, JOB, POD, SECRET
from sandbox.server import SandboxServer
from sandbox.topology import seed

NS = "alphaswarm-admin"


@pytest.fixture
def cluster() -> Iterator[SandboxCluster]:
    c = SandboxCluster()
    seed(c)
    runner = sandbox_jobs.attach(c)
    yield c
    runner.stop()
    assert owned_processes(role=sandbox_jobs.ROLE) == []


@pytest.fixture
def controllers(cluster: SandboxCluster) -> Controllers:
    return Controllers(cluster)


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "demo"}},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"labels": {"app": "demo"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "alphaswarm-remediate:dev",
                            "command": ["sh", "-c"],
                            "args": [script],
                            "env": [{"name": "GREETING", "value": "hello"}],
                        }
                    ],
                },
            },
        },
    }


def until(controllers: Controllers, done: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        controllers.step()
        if result := done():
            return result
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def pods_of(cluster: SandboxCluster, name: str) -> list[dict[str, Any]]:
    return cluster.store.list(POD, NS, labels=f"job-name={name}")[0]


def conditions(cluster: SandboxCluster, name: str) -> dict[str, str]:
    found = cluster.store.get(JOB, NS, name) or {}
    return {c["type"]: c["reason"] for c in found.get("status", {}).get("conditions", [])}


def test_a_job_runs_its_command_and_completes(
    cluster: SandboxCluster, controllers: Controllers
) -> None:
    cluster.store.create(
        SECRET,
        {
            "metadata": {"name": "tokens", "namespace": NS},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    spec = job("hello", 'echo "$GREETING from $(pwd)"; echo "token=$TOKEN"')
    spec["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "token"}}}
    )
    created = cluster.store.create(JOB, spec)
    (pod,) = until(controllers, lambda: pods_of(cluster, "hello"))
    meta = pod["metadata"]
    assert meta["labels"]["batch.kubernetes.io/job-name"] == "hello"
    assert meta["labels"]["controller-uid"] == created["metadata"]["uid"]
    assert meta["labels"]["app"] == "demo"
    assert meta["ownerReferences"][0]["kind"] == "Job"
    assert conditions(cluster, "hello") == {}
    assert until(controllers, lambda: conditions(cluster, "hello")) == {
        "SuccessCriteriaMet": "CompletionsReached",
        "Complete": "CompletionsReached",
    }
    status = (cluster.store.get(JOB, NS, "hello") or {})["status"]
    assert status["succeeded"] == 1 and "active" not in status and "failed" not in status
    assert status["startTime"] <= status["completionTime"]
    (pod,) = pods_of(cluster, "hello")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert cluster.runtime.logs(meta["uid"], "main", previous=False) == [
        f"hello from {os.getcwd()}",
        "token=s3cret",
    ]
    reasons = {e["reason"] for e in cluster.store.list(EVENT, NS)[0]}
    assert {"SuccessfulCreate", "Scheduled", "Started", "Completed"} <= reasons


def test_a_failing_command_fails_the_job_at_its_backoff_limit(
    cluster: SandboxCluster, controllers: Controllers
) -> None:
    cluster.store.create(JOB, job("once", "echo boom >&2; exit 3"))
    until(controllers, lambda: conditions(cluster, "once"))
    assert conditions(cluster, "once") == {
        "FailureTarget": "BackoffLimitExceeded",
        "Failed": "BackoffLimitExceeded",
    }
    (pod,) = pods_of(cluster, "once")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert cluster.runtime.logs(pod["metadata"]["uid"], "main", previous=False) == ["boom"]

    cluster.store.create(JOB, job("twice", "exit 1", backoffLimit=1))
    until(controllers, lambda: conditions(cluster, "twice"))
    assert len(pods_of(cluster, "twice")) == 2
    assert (cluster.store.get(JOB, NS, "twice") or {})["status"]["failed"] == 2


def test_a_command_that_cannot_start_fails_its_pod(
    cluster: SandboxCluster, controllers: Controllers
) -> None:
    spec = job("missing", "")
    spec["spec"]["template"]["spec"]["containers"][0]["command"] = ["no-such-program"]
    cluster.store.create(JOB, spec)
    until(controllers, lambda: conditions(cluster, "missing"))
    (pod,) = pods_of(cluster, "missing")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")


def test_deleting_a_running_job_kills_its_process_and_pod(
    cluster: SandboxCluster, controllers: Controllers
) -> None:
    cluster.store.create(JOB, job("sleepy", "trap 'echo stopping; exit 143' TERM; sleep 60 & wait"))
    until(controllers, lambda: cluster.jobs and sandbox_jobs_pids(cluster))
    (pid,) = sandbox_jobs_pids(cluster).values()
    (pod,) = pods_of(cluster, "sleepy")
    assert pod["status"]["phase"] == "Running" and pod["status"]["conditions"]
    cluster.store.delete(JOB, NS, "sleepy")
    until(controllers, lambda: not pods_of(cluster, "sleepy"))
    assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    assert owned_processes(role=sandbox_jobs.ROLE) == []
    reasons = {e["reason"] for e in cluster.store.list(EVENT, NS)[0]}
    assert "Killing" in reasons


def test_a_killed_container_fails_its_pod_and_job(
    cluster: SandboxCluster, controllers: Controllers
) -> None:
    cluster.store.create(JOB, job("doomed", "sh -c 'sleep 60' & wait"))
    until(controllers, lambda: sandbox_jobs_pids(cluster))
    (name,) = sandbox_jobs_pids(cluster)
    assert isinstance(cluster.jobs, sandbox_jobs.Jobs)
    assert cluster.jobs.pods.kill(name)
    until(controllers, lambda: conditions(cluster, "doomed"))
    assert conditions(cluster, "doomed")["Failed"] == "BackoffLimitExceeded"
    (pod,) = pods_of(cluster, "doomed")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Failed", 137)
    assert owned_processes(role=sandbox_jobs.ROLE) == []
    assert not cluster.jobs.pods.kill(name)


def test_a_finished_job_goes_after_its_ttl_and_a_deadline_stops_a_slow_one(
    cluster: SandboxCluster, controllers: Controllers
) -> None:
    cluster.store.create(JOB, job("brief", "true", ttlSecondsAfterFinished=0))
    cluster.store.create(JOB, job("slow", "sleep 60", activeDeadlineSeconds=1))
    until(controllers, lambda: cluster.store.get(JOB, NS, "brief") is None)
    until(controllers, lambda: not pods_of(cluster, "brief"))
    until(controllers, lambda: conditions(cluster, "slow"))
    assert conditions(cluster, "slow")["Failed"] == "DeadlineExceeded"
    until(controllers, lambda: not pods_of(cluster, "slow"))


def test_job_pod_logs_are_served(tmp_path: Any) -> None:
    with SandboxServer() as sandbox:
        runner = sandbox_jobs.attach(sandbox.cluster)
        try:
            api = config.new_client_from_config_dict(sandbox.kubeconfig())
            batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
            batch.create_namespaced_job(NS, job("served", "echo one; echo two"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = batch.read_namespaced_job("served", NS)
                if got.status and got.status.succeeded:
                    break
                time.sleep(0.1)
            assert got.status.succeeded == 1
            (pod,) = core.list_namespaced_pod(NS, label_selector="job-name=served").items
            assert core.read_namespaced_pod_log(pod.metadata.name, NS) == "one\ntwo\n"
            api.close()
        finally:
            runner.stop()


def sandbox_jobs_pids(cluster: SandboxCluster) -> dict[str, int]:
    assert isinstance(cluster.jobs, sandbox_jobs.Jobs)
    return cluster.jobs.pods.pids()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
