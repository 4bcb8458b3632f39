"""Many incidents at once, each mitigated exactly once: ten Deployments crash-loop at the same
time, and their alerts arrive in one storm as Alertmanager sends them (one group, re-sent as it
grows, by each of two HA replicas), on the running stack (`remediate.stack.start`, every guard
at its default) with two workers: two served runner processes polling the same deployments.

One incident and one triage run per Deployment, each run executed once (one RUNNING, run_count
1, COMPLETED), and exactly one restart per Deployment at the sandbox. bench/incident_storm.py
measures the same with fifty.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from sandbox.flow_env import flow_env
from sandbox.server import SandboxServer
from store.engine import dispose_all, session_for
from store.models import Incident
from tasks.triggers.outbox import TRIGGER_TAG
from tests.stack.fleet import (
    add_fleet,
    crash_looping,
    crash_one_pod_each,
    notifications,
    restarts,
    second_runner,
    settled,
    wait_for,
    waves_of,
)
from tests.stack.up import api_call, flow_runs, processes_with, stack_on

pytestmark = pytest.mark.timeout(600)

INCIDENTS = 10
NAMES = [f"storm-{i:02d}" for i in range(INCIDENTS)]
MITIGATED_WITHIN_SECONDS = 300.0
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """A sandbox in this process, and this process's environment as the stack should inherit it."""
    for key in list(os.environ):
        if key.startswith(("PREFECT_", "REMEDIATE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("REMEDIATE_STORE__URL", f"sqlite:///{tmp_path / 'incidents.db'}")
    monkeypatch.setenv("REMEDIATE_INCIDENTS__REPORTS_DIR", str(tmp_path / "incidents"))
    with SandboxServer(tick_seconds=0.05) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig.yaml")
        for key, value in flow_env(server.url, server.cluster, kubeconfig).items():
            monkeypatch.setenv(key, value)
        yield server
    dispose_all()


def send_from_two_replicas(url: str, token: str, bodies: list[dict[str, Any]]) -> Counter[int]:
    """Every notification from both Alertmanager replicas at once; the answers' statuses."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def replica() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            for body in bodies:
                status = client.post(url, json=body).status_code
                with lock:
                    answers[status] += 1

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_storm_of_incidents_is_mitigated_once_each_by_two_runners(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    cluster = sandbox.cluster
    with ExitStack() as exits:
        stack = exits.enter_context(stack_on(tmp_path, tmp_path / "kubeconfig.yaml"))
        second_runner(stack, tmp_path / "served-deployments-2.log", exits)
        # The health sweep would find the crash loops too: the incidents here are the alerts'.
        sweep = api_call(stack.api_url, "GET", "/deployments/name/health-sweep/health-sweep")
        api_call(stack.api_url, "POST", f"/deployments/{sweep['id']}/pause_deployment")

        add_fleet(cluster, NAMES)
        wait_for("the fleet rolled out", lambda: settled(cluster, NAMES), 60)
        pods = crash_one_pod_each(cluster, NAMES)
        wait_for("every crash loop", lambda: crash_looping(cluster, pods), 60)
        mark = len(cluster.journal.requests())

        bodies = notifications(sorted(pods, key=pods.__getitem__), waves_of(INCIDENTS))
        token = stack.env["REMEDIATE_INTAKE_TOKEN"]
        answers = send_from_two_replicas(stack.intake_url, token, bodies)
        assert answers == Counter({200: 2 * len(bodies)}), answers

        def ended() -> list[dict[str, Any]] | None:
            runs = flow_runs(stack.api_url, tags={"all_": [TRIGGER_TAG]})
            done = len(runs) >= INCIDENTS and all(r["state_type"] in FINAL for r in runs)
            return runs if done else None

        runs = wait_for("every triage run's end", ended, MITIGATED_WITHIN_SECONDS, 0.5)
        states = {
            r["id"]: [
                s["type"]
                for s in api_call(
                    stack.api_url, "GET", "/flow_run_states/", params={"flow_run_id": r["id"]}
                )
            ]
            for r in runs
        }
        time.sleep(0.5)  # a restart still in flight would show as a second one
        restarted = restarts(cluster.journal.requests()[mark:])

    # Both runners stopped, and every run process with them.
    home = f"PREFECT_HOME={tmp_path / 'prefect'}".encode()
    wait_for("no process of the stack left", lambda: not processes_with(home), 30, 0.2)

    with session_for(os.environ["REMEDIATE_STORE__URL"], read_only=True) as session:
        incidents = list(session.exec(select(Incident).where(col(Incident.target).in_(NAMES))))

    # One incident per Deployment, one triage run per incident, each executed once.
    assert sorted(i.target or "" for i in incidents) == NAMES, [i.target_key for i in incidents]
    per_incident = Counter(t for r in runs for t in r["tags"] if t.startswith("incident-"))
    assert per_incident == Counter({f"incident-{i.id}": 1 for i in incidents}), per_incident
    assert [r["state_type"] for r in runs] == ["COMPLETED"] * INCIDENTS, [
        (r["name"], r["state_name"]) for r in runs
    ]
    assert all(r["run_count"] == 1 for r in runs), [(r["name"], r["run_count"]) for r in runs]
    assert all(s.count("RUNNING") == 1 for s in states.values()), states
    # Exactly one restart per Deployment, and none of anything else.
    assert restarted == Counter(dict.fromkeys(NAMES, 1)), restarted
    assert all(i.scenario == "A" and i.verified_at is not None for i in incidents), [
        (i.target, i.scenario, i.status) for i in incidents
    ]
