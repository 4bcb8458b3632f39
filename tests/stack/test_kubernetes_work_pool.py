"""A Prefect Kubernetes work pool on the sandbox: a real Prefect server, a real
`prefect worker start --type kubernetes` (prefect-kubernetes, its kopf observer included) on a
pool made from infra/work-pool's base job template, and the sandbox in this process, whose Jobs
run their pods as real processes (`sandbox.jobs`).

Each flow run becomes a Job in alphaswarm-admin; its pod runs `prefect flow-run execute` from
this checkout and reports to Prefect itself. What prefect-kubernetes reports about Jobs comes
from its observer watching the sandbox, as on a cluster; its worker only creates the Job.

What a cluster shows, from prefect 3.9.1 and prefect-kubernetes 0.8.0's source:
- `prefect flow-run execute` (the pod's process) supervises the flow's engine process and exits
  0 whenever the run's final state got reported: by the engine (a flow that raises: FAILED), or
  by the supervisor itself when the engine died (`os._exit(1)`: CRASHED, "Process exited with
  status code: 1"). Either way the pod Succeeds and the Job Completes.
- A container killed outright (the OOM killer) leaves no one to report: the pod fails (137), the
  Job fails at its backoffLimit (0), and the observer proposes CRASHED "No active or succeeded
  pods found for any job".
- A deleted Job has two reporters. The pod's SIGTERM reaches the supervisor, which the worker
  set to `reschedule` (backoffLimit 0): it proposes AwaitingRetry (SCHEDULED) unless the run is
  final and not Crashed (`_final_state_blocking_reschedule`), and the worker submits the run
  again as a new Job. The observer sees DELETED and, if the run it read was not settled
  (final, SCHEDULED, paused, cancelling), proposes CRASHED "Kubernetes job was deleted". So:
  Crashed then AwaitingRetry (a new Job), AwaitingRetry alone (a new Job), or AwaitingRetry then
  the observer's Crashed from a read made just before it (the run stays CRASHED, no new Job).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from prefect import flow

from flows.health_sweep import health_sweep
from sandbox import jobs as sandbox_jobs
from sandbox.prefect_pools import FINAL, JOB_NAMESPACE, ROOT, PrefectOverSandbox
from sandbox.processes import owned_processes
from sandbox.resources import JOB, POD, SECRET
from sandbox.server import SandboxServer
from tests.prefect_plugin import seed_prefect_home

# The group keeps the module on one xdist worker: its pool (a module fixture) starts once.
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("k8s_pool")]

POOL = "alphaswarm-k8s"
# Generous: on a loaded machine a flow run's process has taken ~50 s to start, and a run
# 2+ minutes to reach RUNNING.
SUBMIT_SECONDS = 180.0
RUN_SECONDS = 360.0


@flow(name="k8s-pool-fails")
def fails() -> None:
    """A run whose flow raises: the engine reports it FAILED."""
    raise RuntimeError("this flow fails on purpose")


@flow(name="k8s-pool-exits")
def exits() -> None:
    """A run whose engine process dies without reporting anything."""
    os._exit(1)


@flow(name="k8s-pool-sleeps")
def sleeps(seconds: float = 600.0) -> None:
    """A run that is still running when its container is killed or its Job deleted."""
    time.sleep(seconds)


class Pool:
    def __init__(self, prefect: PrefectOverSandbox) -> None:
        self.prefect = prefect
        self.sandbox = prefect.sandbox
        variables = {"env": prefect.job_env(), "working_dir": str(ROOT)}
        self.deployments = {
            "health-sweep": prefect.deploy(health_sweep, "health-sweep-k8s", POOL, variables),
            "fails": prefect.deploy(fails, "fails-k8s", POOL, variables),
            "exits": prefect.deploy(exits, "exits-k8s", POOL, variables),
            "sleeps": prefect.deploy(sleeps, "sleeps-k8s", POOL, variables),
        }

    def run(self, deployment: str, **parameters: Any) -> str:
        return self.prefect.create_run(self.deployments[deployment], parameters)

    def jobs_of(self, run_id: str) -> list[dict[str, Any]]:
        found, _ = self.sandbox.cluster.store.list(
            JOB, JOB_NAMESPACE, labels=f"prefect.io/flow-run-id={run_id}"
        )
        return found

    def job_of(self, run_id: str, not_uid: str | None = None) -> dict[str, Any]:
        """The Job the worker submitted for the run (it carries the run's id as a label)."""
        deadline = time.monotonic() + SUBMIT_SECONDS
        while time.monotonic() < deadline:
            for job in self.jobs_of(run_id):
                if job["metadata"]["uid"] != not_uid:
                    return job
            time.sleep(0.5)
        raise AssertionError(f"no Job for run {run_id}:\n{self.prefect.tails()}")

    def pod_of(self, job: dict[str, Any]) -> dict[str, Any]:
        pods, _ = self.sandbox.cluster.store.list(
            POD, JOB_NAMESPACE, labels=f"job-name={job['metadata']['name']}"
        )
        (pod,) = pods
        return pod

    def log_of(self, pod: dict[str, Any]) -> list[str]:
        uid = pod["metadata"]["uid"]
        return self.sandbox.cluster.runtime.logs(uid, "prefect-job", previous=False) or []

    def job_condition(self, name: str, timeout: float = RUN_SECONDS) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.sandbox.cluster.store.get(JOB, JOB_NAMESPACE, name) or {}
            conditions = (job.get("status") or {}).get("conditions") or []
            if conditions:
                return {c["type"]: c["reason"] for c in conditions}
            time.sleep(0.5)
        pods, _ = self.sandbox.cluster.store.list(POD, JOB_NAMESPACE, labels=f"job-name={name}")
        raise AssertionError(f"Job {name} did not finish: {[self.log_of(p)[-5:] for p in pods]}")

    def running(self, run_id: str) -> dict[str, Any]:
        """The run's Job once the run is RUNNING (its pod's process runs the flow)."""
        job = self.job_of(run_id)
        run = self.prefect.wait_for(run_id, ("RUNNING", *FINAL), RUN_SECONDS)
        assert run["state_type"] == "RUNNING", run["state"]
        return job

    def after(self, run_id: str, since: str, types: tuple[str, ...]) -> dict[str, Any]:
        """The first state of the run, after timestamp `since`, of one of `types` (from the
        history, so a state the worker moved on from at once is not missed)."""
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            for state in self.prefect.states(run_id):
                if state["timestamp"] > since and state["type"] in types:
                    return state
            time.sleep(0.5)
        history = [(s["type"], s["name"], s["message"]) for s in self.prefect.states(run_id)]
        raise AssertionError(f"run {run_id}: no {types} after {since}: {history}")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One sandbox, Prefect server and Kubernetes worker for the module's tests."""
    state = tmp_path_factory.mktemp("k8s-pool")
    # The sandbox stops last: the worker's observer watches it until the worker is stopped.
    with SandboxServer() as sandbox, ExitStack() as exits:
        jobs = sandbox_jobs.attach(sandbox.cluster)
        exits.callback(jobs.stop)
        # Tokens reach the Job's pod from this Secret (the template's secretKeyRefs), never as
        # literal values in the Job.
        sandbox.cluster.store.create(
            SECRET,
            {
                "metadata": {"name": "alphaswarm-remediate", "namespace": JOB_NAMESPACE},
                "type": "Opaque",
                "data": {
                    "control-plane-token": base64.b64encode(
                        sandbox.cluster.control_plane.token.encode()
                    ).decode()
                },
            },
        )
        seed_prefect_home(state / "prefect")
        prefect = PrefectOverSandbox(sandbox, state, exits).start_server()
        prefect.create_pool(POOL, "kubernetes")
        prefect.start_worker(POOL, "kubernetes")
        yield Pool(prefect)
    assert owned_processes(role=sandbox_jobs.ROLE) == []


def test_a_flow_run_becomes_a_job_whose_process_runs_the_flow(pool: Pool) -> None:
    run_id = pool.run("health-sweep", open_incidents=False)
    job = pool.job_of(run_id)
    run = pool.prefect.wait_for(run_id, FINAL, RUN_SECONDS)
    assert run["state_type"] == "COMPLETED", run["state"]
    posted = pool.sandbox.cluster.journal.requests(
        "POST", f"/apis/batch/v1/namespaces/{JOB_NAMESPACE}/jobs"
    )
    assert any((r.body or {}).get("metadata", {}).get("labels", {}).get(
        "prefect.io/flow-run-id") == run_id for r in posted)  # fmt: skip
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["env"]
    assert container["args"][:3] == ["prefect", "flow-run", "execute"]
    secret_refs = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert "REMEDIATE_CONTROL_PLANE__TOKEN" in secret_refs
    assert "REMEDIATE_CONTROL_PLANE__TOKEN" not in {
        e["name"] for e in container["env"] if "value" in e
    }
    assert pool.job_condition(job["metadata"]["name"])["Complete"] == "CompletionsReached"
    pod = pool.pod_of(job)
    assert pod["status"]["phase"] == "Succeeded"
    assert any("Completed" in line for line in pool.log_of(pod)), pool.log_of(pod)
    artifacts = pool.prefect.call(
        "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    )
    assert "health-sweep" in {a["key"] for a in artifacts}
    logs = pool.prefect.call(
        "POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}
    )
    assert logs


def test_a_failed_or_crashed_flow_is_reported_by_its_pod_whose_job_completes(
    pool: Pool,
) -> None:
    """The pod's process reports the run's end and exits 0: the Job Completes, as on a
    cluster. A flow that raises is FAILED; one whose engine process dies is CRASHED."""
    failing, dying = pool.run("fails"), pool.run("exits")
    for run_id, type_, message in (
        (failing, "FAILED", "this flow fails on purpose"),
        (dying, "CRASHED", "Process exited with status code: 1"),
    ):
        job = pool.job_of(run_id)
        run = pool.prefect.wait_for(run_id, FINAL, RUN_SECONDS)
        assert run["state_type"] == type_, run["state"]
        assert message in run["state"]["message"], run["state"]
        assert pool.job_condition(job["metadata"]["name"]) == {
            "SuccessCriteriaMet": "CompletionsReached",
            "Complete": "CompletionsReached",
        }
        pod = pool.pod_of(job)
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (pod["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0)


def test_a_killed_container_fails_its_job_and_the_observer_crashes_its_run(pool: Pool) -> None:
    """Nothing in a SIGKILLed container (the OOM killer) reports: the Job fails at its
    backoffLimit and prefect-kubernetes' observer marks the run CRASHED."""
    run_id = pool.run("sleeps")
    job = pool.running(run_id)
    pod = pool.pod_of(job)
    assert pool.sandbox.cluster.jobs is not None
    assert isinstance(pool.sandbox.cluster.jobs, sandbox_jobs.Jobs)
    assert pool.sandbox.cluster.jobs.pods.kill(pod["metadata"]["name"])
    assert pool.job_condition(job["metadata"]["name"])["Failed"] == "BackoffLimitExceeded"
    pod = pool.pod_of(job)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Failed", 137)
    run = pool.prefect.wait_for(run_id, FINAL, RUN_SECONDS)
    assert run["state_type"] == "CRASHED", run["state"]
    assert run["state"]["message"] == "No active or succeeded pods found for any job"


def test_deleting_a_running_job_reschedules_or_crashes_its_run(pool: Pool, tmp_path: Path) -> None:
    """The SIGTERMed pod's process always reschedules the run (AwaitingRetry); the run then gets
    a new Job, unless the observer's CRASHED "Kubernetes job was deleted" lands after the
    reschedule. Nothing else happens to the run."""
    run_id = pool.run("sleeps")
    job = pool.running(run_id)
    since = pool.prefect.flow_run(run_id)["state"]["timestamp"]
    kubeconfig = pool.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(str(kubeconfig))
    try:
        client.BatchV1Api(api).delete_namespaced_job(
            job["metadata"]["name"], JOB_NAMESPACE, propagation_policy="Background"
        )
    finally:
        api.close()
    deadline, outcome = time.monotonic() + SUBMIT_SECONDS, ""
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.5)
        after = [
            (s["type"], s["name"]) for s in pool.prefect.states(run_id) if s["timestamp"] > since
        ]
        if any(j["metadata"]["uid"] != job["metadata"]["uid"] for j in pool.jobs_of(run_id)):
            outcome = "new Job"
        elif ("SCHEDULED", "AwaitingRetry") in after and after[-1][0] == "CRASHED":
            outcome = "crashed"
    states = pool.prefect.states(run_id)
    history = [(s["type"], s["name"], s["message"]) for s in states]
    print("after delete:", outcome, history)
    # What the two reporters said, in order (the new Job's own PENDING and RUNNING left out).
    said = [
        {"AwaitingRetry": "rescheduled", "Kubernetes job was deleted": "crashed"}.get(
            s["name"] if s["type"] == "SCHEDULED" else s["message"], str(s)
        )
        for s in states
        if s["timestamp"] > since and s["type"] in ("SCHEDULED", "CRASHED")
    ]
    allowed = {
        "new Job": (["rescheduled"], ["crashed", "rescheduled"]),
        "crashed": (["rescheduled", "crashed"],),
    }
    assert outcome, f"run {run_id} was neither resubmitted nor crashed: {history}"
    assert said in allowed[outcome], history
