"""The gate's guards on the sandbox, through the real Prefect engine: the kill switch (read
last, right before the request, and before any wait for another run), the scope, the lock on
the owning workload across processes and through the verification, the cooldown, the circuit
breaker, the hourly budget and the blast radius per owning workload, and a human's approval
lifting the last two for one change. Each is judged by the sandbox's journal (what reached the
cluster) and the audit rows in the store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.variables import Variable
from sqlmodel import select

from flows.approvals import approved_over_limits
from flows.hpa_thrash import remediate_hpa_thrash
from flows.triage import triage
from sandbox import injections
from sandbox.resources import DEPLOYMENT, POD, REPLICASET
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from store.safety import release_lease, take_lease
from tasks.changes import gate
from tasks.changes.audit import StoreAudit
from tasks.changes.gate import GuardRefused, Limits
from tasks.changes.guards import StoreGuards
from tasks.changes.models import (
    ChangeRecord,
    ChangeStatus,
    Reach,
    RestartDeployment,
    Target,
    Verdict,
)
from tasks.changes.mutations import delete_pods, restart_deployment, scale_deployment
from tasks.changes.writer import cluster_writer
from tasks.connection import close_all
from tasks.models.alerts import parse_alertmanager
from tasks.models.diagnosis import Scenario
from tasks.models.outcome import OutcomeStatus
from tasks.settings import Settings
from tests.flows.sandbox_settings import alert_payload, point_flows_at
from tests.flows.sandbox_state import settle
from tests.flows.test_hpa_thrash import thrashing  # noqa: F401 (a fixture)
from tests.flows.test_jwks_outage import resume_when_paused
from tests.flows.test_triage import crash_looping

NS, CORE, WORKER = "alphaswarm", "alphaswarm-core", "alphaswarm-worker"
CLIENT = "alphaswarm-client"
RESTART = r"/deployments/alphaswarm-(core|worker|client)$"


@flow(name="guarded-restart")
def guarded_restart(namespace: str, deployment: str, dry_run: bool = False) -> ChangeRecord:
    return restart_deployment(namespace, deployment, dry_run=dry_run, reason="test")


def restarts(sandbox: SandboxServer) -> int:
    return len(sandbox.cluster.journal.mutations(RESTART))


def audit_rows(store: str) -> list[IncidentAction]:
    with session_for(store) as session:
        return list(session.exec(select(IncidentAction).order_by(IncidentAction.id)).all())


def refused_by(error: pytest.ExceptionInfo[GuardRefused]) -> str:
    return next(v.guard for v in error.value.record.verdicts if not v.passed)


@pytest.fixture
def kill_switch_variable() -> Iterator[str]:
    name = "remediate_kill_switch"
    try:
        yield name
    finally:
        Variable.unset(name)


def test_the_kill_switch_variable_stops_every_change_and_a_dry_run_still_plans(
    sandbox: SandboxServer, store: str, kill_switch_variable: str
) -> None:
    Variable.set(kill_switch_variable, "true", overwrite=True)
    with pytest.raises(GuardRefused) as refused:
        guarded_restart(NS, CORE)
    assert refused_by(refused) == "kill-switch" and restarts(sandbox) == 0
    (row,) = audit_rows(store)
    assert row.status is ActionStatus.REFUSED
    # Read last, right before the request: it comes first, and the others were asked before it.
    guards = [v["guard"] for v in row.verdicts]
    assert guards == ["kill-switch", "scope", "lock", "circuit-breaker", "budget"]
    assert not row.verdicts[0]["passed"] and all(v["passed"] for v in row.verdicts[1:])

    plan = guarded_restart(NS, CORE, dry_run=True)
    assert plan.status is ChangeStatus.PLANNED and restarts(sandbox) == 0
    assert {v.guard: v.passed for v in plan.verdicts}["kill-switch"] is False

    Variable.set(kill_switch_variable, "false", overwrite=True)
    assert guarded_restart(NS, CORE).status is ChangeStatus.APPLIED
    assert restarts(sandbox) == 1


def test_the_kill_switch_setting_stops_every_change(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_SAFETY__KILL_SWITCH", "true")
    with pytest.raises(GuardRefused) as refused:
        guarded_restart(NS, CORE)
    assert refused_by(refused) == "kill-switch" and restarts(sandbox) == 0


def test_a_namespace_outside_the_scope_is_refused(sandbox: SandboxServer, store: str) -> None:
    with pytest.raises(GuardRefused) as refused:
        guarded_restart("kube-system", "coredns")
    assert refused_by(refused) == "scope" and "kube-system" in str(refused.value)
    assert sandbox.cluster.journal.mutations() == []
    assert [r.status for r in audit_rows(store)] == [ActionStatus.REFUSED]


def test_the_same_change_from_another_process_moments_later_is_not_repeated(
    sandbox: SandboxServer, store: str
) -> None:
    # Two processes (two served runs for one alert) restart the same Deployment at once: the
    # lease lets one act; the other finds it done moments ago and sends nothing.
    script = (
        "from tests.flows.test_safety_guards import guarded_restart\n"
        f"print(guarded_restart({NS!r}, {CORE!r}).status)\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    runs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    statuses = sorted(run.communicate(timeout=120)[0].split()[-1] for run in runs)
    assert statuses == ["already-done", "applied"]
    assert restarts(sandbox) == 1
    done = [r for r in audit_rows(store) if r.status is ActionStatus.ALREADY_DONE]
    assert [v["guard"] for v in done[0].verdicts][-1] == "cooldown"


def test_the_circuit_breaker_opens_after_n_changes_to_one_target(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_SAFETY__COOLDOWN_SECONDS", "0")
    monkeypatch.setenv("REMEDIATE_SAFETY__MAX_CHANGES_PER_TARGET", "2")
    for _ in range(2):
        assert guarded_restart(NS, CORE).status is ChangeStatus.APPLIED
    with pytest.raises(GuardRefused) as refused:
        guarded_restart(NS, CORE)
    assert refused_by(refused) == "circuit-breaker" and restarts(sandbox) == 2


def test_the_hourly_budget_spans_targets(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR", "1")
    assert guarded_restart(NS, CORE).status is ChangeStatus.APPLIED
    with pytest.raises(GuardRefused) as refused:
        guarded_restart(NS, WORKER)
    assert refused_by(refused) == "budget" and restarts(sandbox) == 1


def test_a_flapping_crash_loop_is_restarted_at_most_n_times_then_escalated(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(sandbox, monkeypatch)
    monkeypatch.setenv("REMEDIATE_SAFETY__COOLDOWN_SECONDS", "0")
    monkeypatch.setenv("REMEDIATE_SAFETY__MAX_CHANGES_PER_TARGET", "1")
    outcomes = []
    for _ in range(2):  # the crash comes back after the restart: the alert fires again
        injections.inject(sandbox.cluster, "crashloop-single")
        settle(sandbox, lambda: len(crash_looping(sandbox)) == 1)
        result = triage(alerts=parse_alertmanager(alert_payload("crashloop-single")), dry_run=False)
        assert result.outcome is not None
        outcomes.append(result.outcome)
    assert [o.status for o in outcomes] == [OutcomeStatus.MITIGATED, OutcomeStatus.ESCALATED]
    assert "circuit-breaker" in outcomes[1].message and restarts(sandbox) == 1
    (refused,) = outcomes[1].changes
    assert refused.status is ChangeStatus.REFUSED
    # Nothing pretends it is fixed: the pod still crash-loops (between two crashes it shows
    # Running for a moment, as a kubelet's does, so look until its next back-off).
    settle(sandbox, lambda: crash_looping(sandbox) != [])


def test_the_kill_switch_leaves_triage_diagnosing_and_escalating(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(sandbox, monkeypatch)
    monkeypatch.setenv("REMEDIATE_SAFETY__KILL_SWITCH", "true")
    injections.inject(sandbox.cluster, "crashloop-single")
    settle(sandbox, lambda: len(crash_looping(sandbox)) == 1)
    result = triage(alerts=parse_alertmanager(alert_payload("crashloop-single")), dry_run=False)
    assert result.scenario is Scenario.POD_CRASH  # diagnosed as usual
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.ESCALATED
    assert "kill-switch" in result.outcome.message
    assert sandbox.cluster.journal.mutations() == []


@pytest.mark.usefixtures("thrashing")
def test_the_kill_switch_turned_on_mid_run_stops_the_next_change(
    sandbox: SandboxServer, kill_switch_variable: str
) -> None:
    # B widens the HPA window; its verification then fails (thirty quiet seconds never come
    # within a second of polls) and it would put the window back: a second change. The switch
    # is turned on between the two: the first stands, the second is never sent.
    hpa = r"/horizontalpodautoscalers/alphaswarm-core$"

    def switch_on_after_the_first_change() -> None:
        deadline = time.monotonic() + 60
        while not sandbox.cluster.journal.mutations(hpa) and time.monotonic() < deadline:
            time.sleep(0.05)
        Variable.set(kill_switch_variable, "true", overwrite=True)

    switcher = threading.Thread(target=switch_on_after_the_first_change, daemon=True)
    switcher.start()
    outcome = remediate_hpa_thrash(
        dry_run=False, quiet_seconds=30.0, verify_attempts=20, verify_delay_seconds=0.1
    )
    switcher.join(timeout=5)
    assert outcome.status is OutcomeStatus.FAILED
    assert "NOT put back" in outcome.message and "kill-switch" in outcome.message
    assert len(sandbox.cluster.journal.mutations(hpa)) == 1


def test_a_lease_left_by_a_dead_run_expires_and_the_next_run_takes_it(
    sandbox: SandboxServer, store: str
) -> None:
    # A run killed while it held the target's lease leaves the row behind: the next run waits
    # for it to expire (not for ever), then takes it and makes the change.
    # Long enough that the run meets the lease even on a busy machine (its start takes 1-3 s).
    lease = 8.0
    with session_for(store) as session:
        assert take_lease(
            session, target_key=f"Deployment/{NS}/{CORE}", holder="killed-run", seconds=lease
        )
    taken = datetime.now(UTC)
    record = guarded_restart(NS, CORE)
    assert record.status is ChangeStatus.APPLIED and restarts(sandbox) == 1
    assert record.at >= taken + timedelta(seconds=lease)
    lock = next(v for v in record.verdicts if v.guard == "lock")
    assert "after waiting" in lock.detail


@flow(name="guarded-delete")
def guarded_delete(selector: str | None = None, pod: str | None = None) -> ChangeRecord:
    return delete_pods(NS, dry_run=False, selector=selector, pod=pod, reason="test")


def test_a_delete_taking_down_most_of_a_workloads_ready_pods_is_refused(
    any_pod_sandbox: SandboxServer,
) -> None:
    # alphaswarm-core has three ready pods: at most two (50%, rounded up) may go at once.
    sandbox = any_pod_sandbox
    with pytest.raises(GuardRefused) as refused:
        guarded_delete(selector=f"app={CORE}")
    assert refused_by(refused) == "blast-radius" and "3 of" in str(refused.value)
    assert sandbox.cluster.journal.mutations() == []

    pods, _ = sandbox.cluster.store.list(POD, NS, labels=f"app={CORE}")
    record = guarded_delete(pod=pods[0]["metadata"]["name"])
    assert record.status is ChangeStatus.APPLIED
    assert {v.guard: v.passed for v in record.verdicts}["blast-radius"] is True


def over_the_budget(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of one change an hour, already spent on the client; the core then crash-loops."""
    point_flows_at(sandbox, monkeypatch)
    monkeypatch.setenv("REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR", "1")
    monkeypatch.setenv("REMEDIATE_SAFETY__APPROVAL_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("REMEDIATE_SAFETY__APPROVAL_POLL_SECONDS", "1")
    assert guarded_restart(NS, CLIENT).status is ChangeStatus.APPLIED
    injections.inject(sandbox.cluster, "crashloop-single")
    settle(sandbox, lambda: len(crash_looping(sandbox)) == 1)


def test_a_restart_over_the_budget_waits_for_a_human_and_goes_once_approved(
    sandbox: SandboxServer, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    over_the_budget(sandbox, monkeypatch)
    monkeypatch.setenv("REMEDIATE_SAFETY__APPROVAL_TIMEOUT_SECONDS", "60")
    approver = resume_when_paused(
        f"pod-crash: {NS}/{CORE}", {"approved": True, "approver": "erin", "comment": "go"}
    )
    result = triage(alerts=parse_alertmanager(alert_payload("crashloop-single")), dry_run=False)
    approver.join(timeout=5)
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.MITIGATED
    assert restarts(sandbox) == 2
    refused, applied = [r for r in audit_rows(store) if r.target_key == f"Deployment/{NS}/{CORE}"]
    assert refused.status is ActionStatus.REFUSED and applied.status is ActionStatus.APPLIED
    budget = next(v for v in applied.verdicts if v["guard"] == "budget")
    assert budget["passed"] and "over the limit, approved by erin" in budget["detail"]


def test_a_restart_over_the_budget_nobody_approves_changes_nothing(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    over_the_budget(sandbox, monkeypatch)
    result = triage(alerts=parse_alertmanager(alert_payload("crashloop-single")), dry_run=False)
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.ESCALATED
    assert "budget" in result.outcome.message
    assert "not approved: nobody (the pause expired)" in result.outcome.message
    assert restarts(sandbox) == 1  # the client's restart that spent the budget, nothing since


@flow(name="approved-delete")
def approved_delete(selector: str) -> ChangeRecord:
    return approved_over_limits(delete_pods, NS, dry_run=False, selector=selector, reason="test")


def test_a_delete_over_the_blast_radius_goes_only_once_a_human_approves(
    any_pod_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = any_pod_sandbox
    monkeypatch.setenv("REMEDIATE_SAFETY__APPROVAL_POLL_SECONDS", "1")
    approver = resume_when_paused("approved-delete", {"approved": True, "approver": "frank"})
    record = approved_delete.with_options(flow_run_name="approved-delete")(f"app={CORE}")
    approver.join(timeout=5)
    assert record.status is ChangeStatus.APPLIED
    blast = next(v for v in record.verdicts if v.guard == "blast-radius")
    assert blast.passed and "3 of" in blast.detail and "approved by frank" in blast.detail
    assert len(sandbox.cluster.journal.mutations()) == 3  # the three pods, one delete each


# -- issue 21: the kill switch is read last; the guards count what really moves ---------------


def gate_is_waiting(target: Target) -> bool:
    """The gate holds the target's in-process lock: it is past the kill switch and the scope,
    waiting on (or holding) the cross-process lease."""
    try:
        with gate.target_lock(target, timeout=0):
            return False
    except gate.TargetBusy:
        return True


def test_a_change_that_waited_for_the_lease_is_refused_if_the_switch_went_on_meanwhile(
    sandbox: SandboxServer, store: str, kill_switch_variable: str
) -> None:
    core = Target(kind="Deployment", namespace=NS, name=CORE)
    with session_for(store) as session:
        assert take_lease(session, target_key=core.key, holder="another-run", seconds=60)
    ended: dict[str, object] = {}

    def run() -> None:
        try:
            ended["record"] = guarded_restart(NS, CORE)
        except GuardRefused as exc:
            ended["refused"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while not gate_is_waiting(core):  # the switch was read (off), the lease is another's
        assert time.monotonic() < deadline and runner.is_alive(), ended
        time.sleep(0.02)
    time.sleep(0.3)
    Variable.set(kill_switch_variable, "true", overwrite=True)
    with session_for(store) as session:
        release_lease(session, target_key=core.key, holder="another-run")
    runner.join(timeout=60)

    refused = ended.get("refused")
    assert isinstance(refused, GuardRefused), ended
    assert next(v.guard for v in refused.record.verdicts if not v.passed) == "kill-switch"
    assert restarts(sandbox) == 0 and sandbox.cluster.journal.mutations() == []
    (row,) = audit_rows(store)
    assert row.status is ActionStatus.REFUSED
    verdicts = {v["guard"]: v for v in row.verdicts}
    assert not verdicts["kill-switch"]["passed"] and "after waiting" in verdicts["lock"]["detail"]


def label_pods(sandbox: SandboxServer, names: list[str], label: str) -> None:
    key, value = label.split("=")

    def add(pod: dict[str, object]) -> None:
        pod["metadata"]["labels"][key] = value  # type: ignore[index]

    for name in names:
        sandbox.cluster.store.update(POD, NS, name, add)


def pod_names(sandbox: SandboxServer, selector: str) -> list[str]:
    pods, _ = sandbox.cluster.store.list(POD, NS, labels=selector)
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


def blast_verdicts(record: ChangeRecord) -> dict[str, tuple[bool, str]]:
    return {
        v.detail.split("'s ")[0].split(" of ", 1)[1]: (v.passed, v.detail)
        for v in record.verdicts
        if v.guard == "blast-radius"
    }


def test_a_selector_spanning_two_workloads_counts_each(sandbox: SandboxServer) -> None:
    # One of the core's three ready pods (within its half) and both of the workers' two (over
    # theirs): the workers' verdict refuses the delete, whatever pod the list names first.
    core, workers = pod_names(sandbox, f"app={CORE}"), pod_names(sandbox, f"app={WORKER}")
    label_pods(sandbox, [core[0], *workers], "doomed=yes")
    with pytest.raises(GuardRefused) as refused:
        guarded_delete(selector="doomed=yes")
    assert refused_by(refused) == "blast-radius"
    assert sandbox.cluster.journal.mutations() == []
    verdicts = blast_verdicts(refused.value.record)
    assert set(verdicts) == {f"Deployment/{NS}/{CORE}", f"Deployment/{NS}/{WORKER}"}
    assert verdicts[f"Deployment/{NS}/{CORE}"][0] is True
    assert "takes down 1 of" in verdicts[f"Deployment/{NS}/{CORE}"][1]
    assert verdicts[f"Deployment/{NS}/{WORKER}"][0] is False
    assert "takes down 2 of" in verdicts[f"Deployment/{NS}/{WORKER}"][1]


def mid_rollout(sandbox: SandboxServer) -> tuple[list[str], list[str]]:
    """alphaswarm-core with two ReplicaSets, both serving: a template change, paused as soon
    as the new ReplicaSet is made, so the old keeps its three pods beside the new one's."""
    sets, _ = sandbox.cluster.store.list(REPLICASET, NS, labels=f"app={CORE}")
    old = {rs["metadata"]["name"] for rs in sets}

    def edit(d: dict[str, object]) -> None:
        template = d["spec"]["template"]  # type: ignore[index]
        template.setdefault("metadata", {}).setdefault("annotations", {})["test/edit"] = "1"

    def pause(d: dict[str, object]) -> None:
        d["spec"]["paused"] = True  # type: ignore[index]

    sandbox.cluster.store.update(DEPLOYMENT, NS, CORE, edit)
    deadline = time.monotonic() + 10
    while True:
        sets, _ = sandbox.cluster.store.list(REPLICASET, NS, labels=f"app={CORE}")
        new = [rs for rs in sets if rs["metadata"]["name"] not in old]
        if new and new[0]["spec"].get("replicas"):
            sandbox.cluster.store.update(DEPLOYMENT, NS, CORE, pause)
            break
        assert time.monotonic() < deadline, "no new ReplicaSet"
        time.sleep(0.005)
    new_hash = new[0]["metadata"]["labels"]["pod-template-hash"]

    def ready(selector: str) -> list[str]:
        pods, _ = sandbox.cluster.store.list(POD, NS, labels=selector)
        return [
            p["metadata"]["name"]
            for p in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]

    settle(sandbox, lambda: len(ready(f"pod-template-hash={new_hash}")) >= 1, timeout=30)
    olds = [n for n in ready(f"app={CORE}") if new_hash not in n]
    return olds, ready(f"pod-template-hash={new_hash}")


def test_a_deployment_mid_rollout_is_one_workload(sandbox: SandboxServer) -> None:
    olds, news = mid_rollout(sandbox)
    assert len(olds) == 3 and len(news) == 1  # two ReplicaSets, four ready pods
    # Two old pods and the new one: three of the Deployment's four, over its half. Counted
    # per ReplicaSet, neither set would be over (2 of 3, 1 of 1).
    label_pods(sandbox, [*olds[:2], *news], "doomed=yes")
    with pytest.raises(GuardRefused) as refused:
        guarded_delete(selector="doomed=yes")
    assert refused_by(refused) == "blast-radius"
    assert sandbox.cluster.journal.mutations() == []
    assert blast_verdicts(refused.value.record) == {
        f"Deployment/{NS}/{CORE}": (
            False,
            f"takes down 3 of Deployment/{NS}/{CORE}'s 4 ready pod(s) at once "
            "(at most 2: 50%, rounded up)",
        )
    }


@flow(name="guarded-scale")
def guarded_scale(deployment: str, replicas: int) -> ChangeRecord:
    return scale_deployment(NS, deployment, replicas, dry_run=False, reason="test")


def test_a_scale_down_beyond_the_share_is_refused(sandbox: SandboxServer) -> None:
    scale = rf"/deployments/{WORKER}/scale$"
    with pytest.raises(GuardRefused) as refused:
        guarded_scale(WORKER, 0)  # both of the workers' two ready pods
    assert refused_by(refused) == "blast-radius" and "takes down 2 of" in str(refused.value)
    assert sandbox.cluster.journal.mutations() == []

    record = guarded_scale(WORKER, 1)  # one of two: within half
    assert record.status is ChangeStatus.APPLIED
    blast = next(v for v in record.verdicts if v.guard == "blast-radius")
    assert blast.passed and "takes down 1 of" in blast.detail
    assert len(sandbox.cluster.journal.mutations(scale)) == 1


VERIFYING = threading.Event()


@pytest.fixture
def any_pod_sandbox(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """A sandbox without the project's RBAC (which lets the runbook delete only the StatefulSet
    pods): the lease must hold for a Deployment's pods as well."""
    with SandboxServer(tick_seconds=0.05) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("REMEDIATE_KUBE__KUBECONFIG", str(kubeconfig))
        try:
            yield server
        finally:
            close_all()


def act(how: str, what: str) -> ChangeRecord:
    if how == "restart":
        return restart_deployment(NS, what, dry_run=False, reason="test")
    if how == "delete-pod":
        return delete_pods(NS, dry_run=False, pod=what, reason="test")
    return delete_pods(NS, dry_run=False, selector=what, reason="test")


@flow(name="change-then-verify")
def change_then_verify(how: str, what: str) -> ChangeRecord:
    """A change, then the run verifies it (here: until the test lets it go)."""
    record = act(how, what)
    VERIFYING.wait(timeout=60)
    return record


@flow(name="guarded-change")
def guarded_change(how: str, what: str) -> ChangeRecord:
    return act(how, what)


FIRST_CORE_POD = "<the first core pod>"


@pytest.mark.parametrize(
    ("first", "second", "workload"),
    [
        # F's shape on a Deployment: its pod deleted, then its restart by another run.
        (("delete-pod", FIRST_CORE_POD), ("restart", CORE), f"Deployment/{NS}/{CORE}"),
        # One StatefulSet pod, named by a selector and by its name.
        (
            ("delete-selected", "app=postgres"),
            ("delete-pod", "postgres-0"),
            f"StatefulSet/{NS}/postgres",
        ),
    ],
    ids=["pod-then-its-deployment", "selector-then-the-same-pod"],
)
def test_changes_to_one_workload_exclude_each_other_through_the_verification(
    any_pod_sandbox: SandboxServer,
    first: tuple[str, str],
    second: tuple[str, str],
    workload: str,
) -> None:
    # The lease is keyed on the owning workload (pod -> ReplicaSet -> Deployment, pod ->
    # StatefulSet) and the first run keeps it while it verifies: the second run's change to the
    # same workload waits for that run to end, then goes.
    sandbox = any_pod_sandbox
    VERIFYING.clear()
    if first[1] == FIRST_CORE_POD:
        first = (first[0], pod_names(sandbox, f"app={CORE}")[0])
    journal = sandbox.cluster.journal
    ended: dict[str, ChangeRecord] = {}
    runs = [
        threading.Thread(
            target=lambda: ended.setdefault("first", change_then_verify(*first)), daemon=True
        ),
        threading.Thread(
            target=lambda: ended.setdefault("second", guarded_change(*second)), daemon=True
        ),
    ]
    runs[0].start()
    deadline = time.monotonic() + 30
    while not journal.mutations():
        assert time.monotonic() < deadline and runs[0].is_alive(), "the first change not sent"
        time.sleep(0.02)
    sent = len(journal.mutations())
    runs[1].start()
    time.sleep(2.0)
    try:
        assert len(journal.mutations()) == sent, "the second change went ahead mid-verification"
    finally:
        VERIFYING.set()
        for run in runs:
            run.join(timeout=60)
    assert ended["first"].status is ChangeStatus.APPLIED
    assert ended["second"].status is ChangeStatus.APPLIED and len(journal.mutations()) > sent
    lock = next(v for v in ended["second"].verdicts if v.guard == "lock")
    assert lock.detail.startswith(f"{workload} held after waiting")


# -- issue 22: one read of the kill switch per change, last; before a wait too -----------------


class CountingGuards(StoreGuards):
    """The store's guards, counting the kill switch's reads (each one a request to Prefect);
    `then` runs after the history guards answered: the last step before the switch's read."""

    def __init__(self, then: Callable[[], None] = lambda: None) -> None:
        settings = Settings()
        super().__init__(
            settings.store.url.get_secret_value(), settings.safety, settings.workloads.scope
        )
        self.reads, self._then = 0, then

    def kill_switch(self) -> Verdict:
        self.reads += 1
        return super().kill_switch()

    def limits(self, *args: Any, **kwargs: Any) -> Limits:
        answer = super().limits(*args, **kwargs)
        self._then()
        return answer


def restart_core(guards: StoreGuards, key: str) -> ChangeRecord:
    """A's restart through the gate as the mutation task makes it, outside a flow run."""
    settings = Settings()
    return gate.apply_change(
        RestartDeployment(target=Target(kind="Deployment", namespace=NS, name=CORE)),
        key=key,
        dry_run=False,
        reach=Reach(cluster=cluster_writer()),
        audit=StoreAudit(settings.store.url.get_secret_value()),
        guards=guards,
    )


def test_a_change_that_need_not_wait_reads_the_switch_once_and_one_that_waits_first_too(
    sandbox: SandboxServer, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_SAFETY__COOLDOWN_SECONDS", "0")  # the same restart twice
    guards = CountingGuards()
    assert restart_core(guards, "k-free").status is ChangeStatus.APPLIED
    assert guards.reads == 1

    # Another run holds the lease a moment: the change asks the switch before it waits, and
    # again right before the request.
    with session_for(store) as session:
        assert take_lease(
            session, target_key=f"Deployment/{NS}/{CORE}", holder="another-run", seconds=1
        )
    guards = CountingGuards()
    record = restart_core(guards, "k-waited")
    assert record.status is ChangeStatus.APPLIED and guards.reads == 2
    assert "after waiting" in next(v.detail for v in record.verdicts if v.guard == "lock")
    assert restarts(sandbox) == 2


def test_the_switch_turned_on_after_every_other_guard_passed_stops_the_change(
    sandbox: SandboxServer, store: str, kill_switch_variable: str
) -> None:
    # The switch was read "off" by an earlier change in this process; it goes on once this
    # change has passed the lease, the blast radius and the history guards: the read right
    # before the request reaches the server and sees it.
    Variable.set(kill_switch_variable, "false", overwrite=True)
    assert restart_core(CountingGuards(), "k-before").status is ChangeStatus.APPLIED
    switch_on = CountingGuards(
        then=lambda: Variable.set(kill_switch_variable, "true", overwrite=True)
    )
    with pytest.raises(GuardRefused) as refused:
        restart_core(switch_on, "k-after")
    assert refused_by(refused) == "kill-switch" and switch_on.reads == 1
    assert restarts(sandbox) == 1
    rows = audit_rows(store)
    assert [r.status for r in rows] == [ActionStatus.APPLIED, ActionStatus.REFUSED]
    assert [v["guard"] for v in rows[1].verdicts][:3] == ["kill-switch", "scope", "lock"]


def test_a_prefect_api_that_cannot_be_reached_is_a_switch_that_is_on(
    sandbox: SandboxServer, store: str
) -> None:
    # Nothing listens on the API's port: the read fails, and unknown is not "off". A change
    # that would wait for another run's lease is refused before it waits.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_api = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    with temporary_settings({PREFECT_API_URL: dead_api}):
        with pytest.raises(GuardRefused) as refused:
            restart_core(CountingGuards(), "k-down")
        assert refused_by(refused) == "kill-switch"
        assert "could not be read" in str(refused.value)

        with session_for(store) as session:
            assert take_lease(
                session, target_key=f"Deployment/{NS}/{CORE}", holder="another-run", seconds=60
            )
        started = time.monotonic()
        with pytest.raises(GuardRefused) as refused:
            restart_core(CountingGuards(), "k-down-busy")
        assert refused_by(refused) == "kill-switch"
        assert time.monotonic() - started < 10  # not the lock's 120 s
    assert sandbox.cluster.journal.mutations() == []
    assert [r.status for r in audit_rows(store)] == [ActionStatus.REFUSED] * 2
