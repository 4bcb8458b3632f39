"""The gate's guards hold across a restart of every process the project runs.

Two stacks, one after the other, as `remediate up` starts them (a Prefect server, the served
deployments with one process per run, the intake) on one state folder: the same Prefect
database and the same incident store. The cluster is a sandbox in this process and is not
restarted, as a real cluster would not be.

    stack 1: A restarts the crash-looping core (1 change) ─► the kill-switch Variable is set
             ─► every process stopped
    stack 2: the crash is back ─► A is refused by the kill switch (Prefect's Variable survived)
             ─► the Variable unset ─► A is refused by the circuit breaker (the store's audit
             rows survived: one restart per window was allowed, and it was made before)

The sandbox's journal shows the one restart, and nothing after it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from remediate.stack import Stack
from sandbox import injections
from sandbox.flow_env import flow_env
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tests.flows.sandbox_state import settle
from tests.flows.test_triage import crash_looping
from tests.stack.test_warm_start import FINAL, wait_for
from tests.stack.up import api_call, stack_on

pytestmark = pytest.mark.timeout(900)

CORE = "Deployment/alphaswarm/alphaswarm-core"
RESTART = r"/deployments/alphaswarm-core$"
KILL_SWITCH = "remediate_kill_switch"


def run_pod_crash(stack: Stack) -> str:
    """Run A from its deployment, applying, to its end: its final state."""
    deployment = api_call(stack.api_url, "GET", "/deployments/name/pod-crash/pod-crash")
    run = api_call(
        stack.api_url,
        "POST",
        f"/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"dry_run": False, "verify_attempts": 60}},
    )

    def final() -> Any:
        state = api_call(stack.api_url, "GET", f"/flow_runs/{run['id']}")["state_type"]
        return state if state in FINAL else None

    return str(wait_for("the run's end", final, 300))


def set_kill_switch(stack: Stack, on: bool) -> None:
    if on:
        body = {"name": KILL_SWITCH, "value": "true"}
        api_call(stack.api_url, "POST", "/variables/", json=body)
    else:
        api_call(stack.api_url, "DELETE", f"/variables/name/{KILL_SWITCH}")


def core_rows(store: str) -> list[IncidentAction]:
    with session_for(store) as session:
        query = select(IncidentAction).where(IncidentAction.target_key == CORE)
        return list(session.exec(query.order_by(IncidentAction.id)).all())


def refused_by(row: IncidentAction) -> str:
    return str(next(v["guard"] for v in row.verdicts if not v["passed"]))


def crash(sandbox: SandboxServer) -> None:
    injections.inject(sandbox.cluster, "crashloop-single")
    settle(sandbox, lambda: len(crash_looping(sandbox)) == 1)


def test_guard_state_survives_a_restart_of_every_process(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'incidents.db'}"
    with pytest.MonkeyPatch.context() as env, SandboxServer(tick_seconds=0.05) as sandbox:
        for key in list(os.environ):
            if key.startswith(("PREFECT_", "REMEDIATE_")):
                env.delenv(key)
        env.setenv("REMEDIATE_STORE__URL", store)
        env.setenv("REMEDIATE_INCIDENTS__REPORTS_DIR", str(tmp_path / "incidents"))
        env.setenv("REMEDIATE_SAFETY__COOLDOWN_SECONDS", "0")  # only the breaker stops a repeat
        env.setenv("REMEDIATE_SAFETY__MAX_CHANGES_PER_TARGET", "1")
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig.yaml")
        for key, value in flow_env(sandbox.url, sandbox.cluster, kubeconfig).items():
            env.setenv(key, value)

        crash(sandbox)
        with stack_on(tmp_path, tmp_path / "kubeconfig.yaml") as first:
            assert run_pod_crash(first) == "COMPLETED"
            set_kill_switch(first, on=True)
        assert [r.status for r in core_rows(store)] == [ActionStatus.APPLIED]
        restarts = len(sandbox.cluster.journal.mutations(RESTART))
        assert restarts == 1

        crash(sandbox)
        with stack_on(tmp_path, tmp_path / "kubeconfig.yaml") as second:
            assert run_pod_crash(second) == "FAILED"  # refused: the change is not made
            set_kill_switch(second, on=False)
            assert run_pod_crash(second) == "FAILED"
        _, switched_off, breaker = core_rows(store)
        assert refused_by(switched_off) == "kill-switch"
        assert refused_by(breaker) == "circuit-breaker"
        assert "1 rollout-restart of" in next(
            v["detail"] for v in breaker.verdicts if v["guard"] == "circuit-breaker"
        )
        assert len(sandbox.cluster.journal.mutations(RESTART)) == restarts
