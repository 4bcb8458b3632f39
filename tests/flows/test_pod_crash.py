"""Runbook A end to end: a single crash injected through the behaviour model, remediated by the
flow through the real Prefect engine, judged by the sandbox's journal and state."""

from __future__ import annotations

import time

import pytest

from flows.pod_crash import remediate_pod_crash
from sandbox.journal import Fault
from sandbox.resources import POD
from sandbox.server import SandboxServer
from tasks.changes.models import ChangeStatus
from tasks.models.diagnosis import Action, Scenario
from tasks.models.outcome import OutcomeStatus
from tests.flows.sandbox_state import settle

NS, CORE = "alphaswarm", "alphaswarm-core"


def core_pods(sandbox: SandboxServer) -> list[dict]:  # type: ignore[type-arg]
    pods, _ = sandbox.cluster.store.list(POD, NS, labels=f"app={CORE}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def crash_looping(sandbox: SandboxServer) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in core_pods(sandbox)
        for s in p.get("status", {}).get("containerStatuses") or []
        if (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    ]


@pytest.fixture
def single_crash(sandbox: SandboxServer) -> str:
    victim = core_pods(sandbox)[0]
    sandbox.cluster.behaviour.set_pod(
        victim["metadata"]["uid"],
        crash_looping=True,
        crash_log=("Traceback (most recent call last):", "KeyError: 'DATABASE_URL'"),
    )
    deadline = time.monotonic() + 10
    while not crash_looping(sandbox) and time.monotonic() < deadline:
        sandbox.controllers.step()
    assert crash_looping(sandbox) == [victim["metadata"]["name"]]
    sandbox.cluster.journal.clear()
    return str(victim["metadata"]["name"])


def test_dry_run_returns_the_plan_and_changes_nothing(
    sandbox: SandboxServer, single_crash: str
) -> None:
    outcome = remediate_pod_crash(dry_run=True)
    assert outcome.status is OutcomeStatus.PLANNED and outcome.scenario is Scenario.POD_CRASH
    assert outcome.diagnosis is not None
    assert outcome.diagnosis.action is Action.RESTART_DEPLOYMENT
    assert any("KeyError" in e for e in outcome.diagnosis.evidence)
    (plan,) = outcome.changes
    assert plan.status is ChangeStatus.PLANNED and plan.after["restartedAt"]
    journal = sandbox.cluster.journal
    assert journal.mutations() == []
    assert [r.path for r in journal.mutations(include_dry_run=True)] == [
        f"/apis/apps/v1/namespaces/{NS}/deployments/{CORE}"
    ]
    # Nothing changed: the same pod still crash-loops. Between two crashes it shows Running for
    # a moment, as a kubelet's pod does, so look until its next back-off.
    settle(sandbox, lambda: crash_looping(sandbox) == [single_crash])
    assert "# Scenario A" in outcome.to_markdown()


def test_apply_restarts_once_and_the_crash_is_gone(
    sandbox: SandboxServer, single_crash: str
) -> None:
    outcome = remediate_pod_crash(dry_run=False)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    (change,) = outcome.changes
    assert change.status is ChangeStatus.APPLIED and not change.dry_run
    mutations = sandbox.cluster.journal.mutations()
    assert [(r.method, r.path) for r in mutations] == [
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{CORE}")
    ]
    assert crash_looping(sandbox) == []
    assert single_crash not in {p["metadata"]["name"] for p in core_pods(sandbox)}
    assert outcome.verification and all(v.passed for v in outcome.verification)


def test_crashes_back_within_the_cooldown_are_not_restarted_again_and_fail_at_once(
    sandbox: SandboxServer, single_crash: str
) -> None:
    # A's restart fixed the crash; moments later a pod that restart started crashes too. The
    # cooldown does not repeat the restart, and the new pod's crash is the verdict on it: the
    # run fails (a human decides) rather than wait out the verification for a rollout that
    # cannot complete.
    assert remediate_pod_crash(dry_run=False).status is OutcomeStatus.MITIGATED
    fresh = core_pods(sandbox)[0]
    sandbox.cluster.behaviour.set_pod(fresh["metadata"]["uid"], crash_looping=True)
    settle(sandbox, lambda: crash_looping(sandbox) == [fresh["metadata"]["name"]])

    outcome = remediate_pod_crash(dry_run=False)
    assert outcome.status is OutcomeStatus.FAILED, outcome.message
    (change,) = outcome.changes
    assert change.status is ChangeStatus.ALREADY_DONE
    assert change.verdicts[-1].guard == "cooldown" and change.since < change.at
    assert f"{fresh['metadata']['name']}, started by the fix, crashed since" in outcome.message
    assert len(sandbox.cluster.journal.mutations()) == 1


def test_a_503_on_the_restart_is_retried_and_lands_once(
    sandbox: SandboxServer, single_crash: str
) -> None:
    sandbox.cluster.faults.add(
        Fault(
            path=rf"/deployments/{CORE}$",
            methods=frozenset({"PATCH"}),
            error_rate=1.0,
            status=503,
            times=1,
        )
    )
    outcome = remediate_pod_crash(dry_run=False)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    patches = sandbox.cluster.journal.requests("PATCH", rf"/deployments/{CORE}$")
    assert [r.status for r in patches] == [503, 200]
    assert len(sandbox.cluster.journal.mutations()) == 1
    assert crash_looping(sandbox) == []


def test_no_crash_means_nothing_to_do(sandbox: SandboxServer) -> None:
    outcome = remediate_pod_crash(dry_run=False)
    assert outcome.status is OutcomeStatus.NOTHING_TO_DO and outcome.changes == ()
    assert sandbox.cluster.journal.mutations() == []
