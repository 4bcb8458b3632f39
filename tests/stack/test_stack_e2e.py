"""The running system end to end, as `remediate up` starts it: an Alertmanager payload POSTed to
the intake becomes one triage run in Prefect, the mitigation on the sandbox, one incident and
its report; the same payload sent again, and by a second intake replica, starts nothing more."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from remediate.processes import Child, answers, free_port
from sandbox.alerts import crashloop_alert, webhook
from store.engine import session_for
from store.models import ActionStatus, Incident, IncidentAction, IncidentStatus, TriageOutbox
from tests.flows.sandbox_settings import ALERTS
from tests.stack.up import REMEDIATE, RunningStack, api_call, flow_runs

# One worker runs both modules under xdist: they share one stack (conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("stack")]


def finished_runs(stack: RunningStack, incident_id: int) -> list[dict[str, Any]]:
    """The incident's top-level flow runs once they have all finished (at most a minute)."""
    top = {"tags": {"all_": [f"incident-{incident_id}"]}, "parent_task_run_id": {"is_null_": True}}
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = flow_runs(stack.api_url, **top)
        if runs and all(r["state_type"] in FINAL for r in runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"incident {incident_id}'s runs did not finish: {runs}")


FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
CONTROLLER = "Deployment/ingress-nginx/ingress-nginx-controller"


def kubectl(stack: RunningStack, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(stack.kubeconfig), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def store_url(stack: RunningStack) -> str:
    return stack.env["REMEDIATE_STORE__URL"]


def test_the_sample_alert_becomes_one_verified_mitigation_with_its_report(
    stack: RunningStack,
) -> None:
    line = stack.wait_for_line("sample: incident ", 240, containing=" report: ")
    incident_id = int(line.split()[2])
    report = Path(line.split(" report: ", 1)[1])
    report = report if report.is_absolute() else stack.state / report
    assert report.is_file() and "alphaswarm-core" in report.read_text()
    assert not any(line.startswith("sample: failed") for line in stack.lines)

    with session_for(store_url(stack)) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert incident.status is IncidentStatus.RESOLVED and incident.automated
        run_id = incident.triage_flow_run_id
    (triage,) = finished_runs(stack, incident_id)
    assert triage["id"] == run_id and triage["state_type"] == "COMPLETED"
    assert triage["parameters"]["dry_run"] is False
    # the scenario's subflow made the runbook's change, and the sandbox shows it
    template = json.loads(
        kubectl(stack, "get", "deployment", "alphaswarm-core", "-n", "alphaswarm", "-o", "json")
    )
    annotations = template["spec"]["template"]["metadata"].get("annotations", {})
    assert "kubectl.kubernetes.io/restartedAt" in annotations


def second_intake(stack: RunningStack, logs: Path) -> Iterator[str]:
    port = free_port()
    child = Child(
        "intake-2",
        [sys.executable, "-m", "deployments.intake", "--port", str(port)],
        {**stack.env, "PREFECT_API_URL": stack.api_url},
        logs / "intake-2.log",
    ).start()
    try:
        child.wait_until(answers(f"http://127.0.0.1:{port}/healthz"), 60, "health")
        yield f"http://127.0.0.1:{port}/api/v1/alerts"
    finally:
        child.stop()


def test_copies_from_retries_and_two_replicas_start_one_run(
    stack: RunningStack, tmp_path: Path
) -> None:
    # An alert about a worker pod that is not crashing: triage finds nothing to restart, but a
    # run is started for its incident, once.
    pods = kubectl(
        stack, "get", "pods", "-n", "alphaswarm", "-l", "app=alphaswarm-worker", "-o", "name"
    )
    pod = pods.split()[0].removeprefix("pod/")
    body = webhook([crashloop_alert("alphaswarm", pod)])
    headers = {"Authorization": f"Bearer {stack.token}"}
    for replica in second_intake(stack, tmp_path):
        urls = [stack.intake_url] * 5 + [replica] * 5
        with ThreadPoolExecutor(4) as pool:
            answers_ = list(
                pool.map(lambda u: httpx.post(u, json=body, headers=headers, timeout=30), urls)
            )
    assert {a.status_code for a in answers_} == {200}
    assert sum(a.json()["accepted"] for a in answers_) == 1
    assert sum(a.json()["runs_queued"] for a in answers_) == 1
    (incident_id,) = {i for a in answers_ for i in a.json()["incidents"]}

    with session_for(store_url(stack)) as session:
        rows = session.exec(
            select(TriageOutbox).where(TriageOutbox.incident_id == incident_id)
        ).all()
    assert len(rows) == 1
    (run,) = finished_runs(stack, incident_id)
    assert run["state_type"] == "COMPLETED"


def start_triage(stack: RunningStack, deployment_id: str, alerts: dict[str, Any], n: int) -> str:
    """A triage run made through the API (as the UI's Run button does), changing the cluster."""
    run = api_call(
        stack.api_url,
        "POST",
        f"/deployments/{deployment_id}/create_flow_run",
        json={"parameters": {"alerts": alerts, "dry_run": False}, "name": f"concurrent-{n}"},
    )
    return str(run["id"])


def test_two_concurrent_triage_runs_for_one_target_make_one_change(stack: RunningStack) -> None:
    # Two runs, each in a served process of its own, triage the same ingress controller at
    # once. The gate's lease lets one restart it; the other finds the restart done moments ago.
    subprocess.run(
        [
            REMEDIATE,
            "sandbox",
            "inject",
            "ingress-controller-down",
            "--kubeconfig",
            str(stack.kubeconfig),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    alerts = json.loads((ALERTS / "ingress-controller-down.json").read_text())
    triage = api_call(stack.api_url, "GET", "/deployments/name/triage/triage")
    runs = [start_triage(stack, triage["id"], alerts, n) for n in (1, 2)]
    deadline = time.monotonic() + 240
    ended: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ended = flow_runs(stack.api_url, id={"any_": runs})
        if len(ended) == 2 and all(r["state_type"] in FINAL for r in ended):
            break
        time.sleep(0.5)
    states = [(r["state_type"], (r.get("state") or {}).get("message")) for r in ended]
    assert [state for state, _ in states] == ["COMPLETED", "COMPLETED"], states

    with session_for(store_url(stack)) as session:
        rows = session.exec(
            select(IncidentAction)
            .where(IncidentAction.target_key == CONTROLLER)
            .where(col(IncidentAction.dry_run).is_(False))
        ).all()
    # The second run either found the restart done moments ago (the cooldown's verdict), or,
    # later, probed a controller that was no longer down and changed nothing.
    assert [r.status for r in rows].count(ActionStatus.APPLIED) == 1
    for repeat in (r for r in rows if r.status is not ActionStatus.APPLIED):
        assert repeat.status is ActionStatus.ALREADY_DONE
        assert [v["guard"] for v in repeat.verdicts][-1] in ("cooldown", "lock")
    # The cluster's own count: one rollout, so one ReplicaSet besides the first.
    replica_sets = json.loads(kubectl(stack, "get", "rs", "-n", "ingress-nginx", "-o", "json"))
    owned = [
        rs
        for rs in replica_sets["items"]
        if any(o["name"] == "ingress-nginx-controller" for o in rs["metadata"]["ownerReferences"])
    ]
    assert len(owned) == 2
