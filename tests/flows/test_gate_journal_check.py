"""The journal check every flow test ends with (tests/flows/gate_journal.py) can fail: a write
that goes around the gate is reported, and so is an exec of an undeclared command, while a gated
write, a dry run and a declared read-only exec are not."""

from __future__ import annotations

import os

import httpx
import pytest
from kubernetes import client, config
from kubernetes.stream import stream
from prefect import flow

from sandbox.journal import Request
from sandbox.resources import POD
from sandbox.server import SandboxServer
from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import ExecCommand, runs_list
from tasks.adapters.kubernetes.client import close_websocket
from tasks.changes.models import ChangeRecord, ChangeStatus
from tasks.changes.mutations import restart_deployment
from tasks.changes.writer import cluster_writer
from tests.flows.gate_journal import (
    READ_ONLY_WRITES,
    target_prefix,
    undeclared_execs,
    ungated_writes,
)

NS, CORE, REDIS = "alphaswarm", "alphaswarm-core", "redis-master-0"
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/{CORE}"


@flow(name="journal-check-restart")
def gated_restart(dry_run: bool) -> ChangeRecord:
    return restart_deployment(NS, CORE, dry_run=dry_run, reason="journal check")


def write(method: str, path: str, **query: list[str]) -> Request:
    return Request(method, path, dict(query), "application/json", None, 200)


def test_a_writes_path_names_the_audit_rows_target() -> None:
    assert target_prefix(write("PATCH", DEPLOYMENT)) == f"Deployment/{NS}/{CORE}"
    assert target_prefix(write("PATCH", DEPLOYMENT + "/scale")) == f"Deployment/{NS}/{CORE}"
    assert target_prefix(write("PATCH", "/manage/deployments/alphaswarm-worker/scale")) == (
        f"Deployment/{NS}/alphaswarm-worker"
    )
    hpa = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{CORE}"
    assert target_prefix(write("PATCH", hpa)) == f"HorizontalPodAutoscaler/{NS}/{CORE}"
    assert target_prefix(write("DELETE", f"/api/v1/namespaces/{NS}/pods/p-1")) == f"Pod/{NS}/"
    assert target_prefix(write("PATCH", f"/api/v1/namespaces/{NS}/pods/p-1")) is None
    assert target_prefix(write("POST", "/sandbox/v1/incidents/crashloop-single")) is None
    assert READ_ONLY_WRITES.match(f"/api/v1/namespaces/{NS}/pods/p-1/exec")


@pytest.mark.ungated_writes("execs around the adapter on purpose, to prove the check sees it")
def test_an_exec_of_an_undeclared_command_is_reported(sandbox: SandboxServer, store: str) -> None:
    """The adapter refuses an undeclared argv before sending it; a client that goes around it
    (the official client's exec stream, as kubectl would) is still caught by the journal."""
    pods, _ = sandbox.cluster.store.list(POD, NS, labels=f"app={CORE}")
    victim = pods[0]["metadata"]["name"]
    cluster_writer().exec(NS, victim, runs_list(5))  # declared: not reported
    with pytest.raises(PermanentError, match="not one of the declared"):
        cluster_writer().exec(NS, victim, ExecCommand(name="runs-list", argv=("rm", "-rf", "/")))
    assert undeclared_execs([sandbox]) == []
    api = config.new_client_from_config(os.environ["REMEDIATE_KUBE__KUBECONFIG"])
    try:
        resp = stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_exec,
            victim,
            NS,
            command=["sh", "-c", "rm -rf /data"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=5)
        close_websocket(resp)
    finally:
        api.close()
    assert undeclared_execs([sandbox]) == [
        f"GET /api/v1/namespaces/{NS}/pods/{victim}/exec ['sh', '-c', 'rm -rf /data']: not a "
        "declared read-only command"
    ]
    assert ungated_writes([sandbox], {store}) == undeclared_execs([sandbox])


def test_a_gated_write_and_a_dry_run_leave_nothing_to_report(
    sandbox: SandboxServer, store: str
) -> None:
    assert gated_restart(dry_run=True).status is ChangeStatus.PLANNED
    assert gated_restart(dry_run=False).status is ChangeStatus.APPLIED
    assert [r.path for r in sandbox.cluster.journal.mutations(include_dry_run=True)] == [
        DEPLOYMENT,
        DEPLOYMENT,
    ]
    assert ungated_writes([sandbox], {store}) == []


@pytest.mark.ungated_writes("bypasses the gate on purpose, to prove the journal check sees it")
def test_a_write_around_the_gate_is_reported_even_beside_a_plan_for_its_target(
    sandbox: SandboxServer, store: str
) -> None:
    assert gated_restart(dry_run=True).status is ChangeStatus.PLANNED  # a row, but nothing sent
    writer = cluster_writer()
    # Writes infra/rbac.yaml allows the flows' account (the sandbox enforces it): a restart of
    # alphaswarm-core and a delete of the Redis pod, each as the gate would send it, without it.
    writer.rollout_restart(NS, CORE, dry_run=True)  # a dry run: not reported
    writer.rollout_restart(NS, CORE, dry_run=False)
    pods, _ = sandbox.cluster.store.list(POD, NS, labels=f"app={CORE}")
    victim = pods[0]["metadata"]["name"]
    writer.exec(NS, victim, runs_list(5))  # a declared read-only command: not reported
    writer.delete_pod(NS, REDIS, dry_run=False)
    httpx.post(f"{sandbox.url}/sandbox/v1/incidents/crashloop-single", trust_env=False)
    assert ungated_writes([sandbox], {store}) == [
        f"PATCH {DEPLOYMENT}: no audit row for Deployment/{NS}/{CORE}* whose change was sent "
        "(sent: [])",
        f"DELETE /api/v1/namespaces/{NS}/pods/{REDIS}: no audit row for Pod/{NS}/* whose change "
        "was sent (sent: [])",
        "POST /sandbox/v1/incidents/crashloop-single: no gated change writes this",
    ]
