"""Runbook F end to end: `postgres-down` and `redis-down` injected, the flow run through the real
Prefect engine, judged by the sandbox's journal, state and data. Each store is healed only by
deleting its pod; restarting workers (the symptom) heals nothing, and is never done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

import flows.stateful_failover
from flows.stateful_failover import remediate_stateful_failover
from sandbox.injections import inject
from sandbox.redis_cli import SANDBOX_REDIS_PASSWORD
from sandbox.server import SandboxServer
from sandbox.topology import SANDBOX_POSTGRES_DB, SANDBOX_POSTGRES_USER
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tasks.adapters.exec_commands import TERRAFORM_RUNS_COUNT
from tasks.changes.models import ChangeStatus
from tasks.models.diagnosis import Action, Scenario
from tasks.models.outcome import OutcomeStatus
from tests.flows.sandbox_state import (
    assert_flow_never_sleeps,
    crash_looping,
    fail_one_request_in_ten,
    pods,
    ready_count,
    settle,
)
from tests.flows.test_jwks_outage import resume_when_paused

NS = "alphaswarm"
POSTGRES_POD, REDIS_POD = "postgres-0", "redis-master-0"
# Deleting the Postgres pod is pre-approved here, as an operator may; the approval's own
# path (pause, answer, expiry) is tested below.
FAST: dict[str, Any] = {
    "verify_attempts": 100,
    "verify_delay_seconds": 0.1,
    "approve_postgres_delete": True,
    "approved_by": "on-call (test)",
}


def marker(sandbox: SandboxServer, pod: str, *argv: str) -> str:
    """What the runbook's exec answers, straight from the sandbox runtime."""
    result = sandbox.cluster.runtime.exec(NS, pod, "app", list(argv))
    return result.stdout.strip() if result.exit_code == 0 else f"error: {result.stderr}"


def postgres_rows(sandbox: SandboxServer) -> str:
    login = ("-U", SANDBOX_POSTGRES_USER, "-d", SANDBOX_POSTGRES_DB)
    return marker(sandbox, POSTGRES_POD, "psql", *login, "-tAc", TERRAFORM_RUNS_COUNT)


def redis_keys(sandbox: SandboxServer) -> str:
    return marker(sandbox, REDIS_POD, "redis-cli", "-a", SANDBOX_REDIS_PASSWORD, "dbsize")


def uid_of(sandbox: SandboxServer, selector: str) -> str:
    (pod,) = pods(sandbox, NS, selector)
    return str(pod["metadata"]["uid"])


def postgres_down(sandbox: SandboxServer) -> None:
    inject(sandbox.cluster, "postgres-down")
    settle(sandbox, lambda: crash_looping(sandbox, NS, "app=postgres") == [POSTGRES_POD])


def redis_down(sandbox: SandboxServer) -> None:
    inject(sandbox.cluster, "redis-down")
    settle(
        sandbox,
        lambda: (
            crash_looping(sandbox, NS, "app=redis") == [REDIS_POD]
            and len(crash_looping(sandbox, NS, "app=alphaswarm-worker")) == 2
        ),
    )


Store = tuple[Callable[[SandboxServer], None], str, Callable[[SandboxServer], str], str]
STORES: dict[str, Store] = {
    # incident: (inject, selector, data marker, the one DELETE that fixes it)
    "postgres-down": (postgres_down, "app=postgres", postgres_rows, POSTGRES_POD),
    "redis-down": (redis_down, "app=redis", redis_keys, REDIS_POD),
}


@pytest.mark.parametrize("incident", STORES)
def test_dry_run_returns_the_plan_and_changes_nothing(
    sandbox: SandboxServer, incident: str
) -> None:
    make, selector, _, pod = STORES[incident]
    uid = uid_of(sandbox, selector)
    make(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=True, **FAST)
    assert outcome.status is OutcomeStatus.PLANNED, outcome.message
    assert outcome.scenario is Scenario.STATEFUL_FAILOVER
    assert outcome.diagnosis is not None and outcome.diagnosis.action is Action.DELETE_PODS
    (plan,) = outcome.changes
    assert plan.status is ChangeStatus.PLANNED and plan.after == {pod: "deleted"}
    journal = sandbox.cluster.journal
    assert journal.mutations() == []
    assert [(r.method, r.path) for r in journal.mutations(include_dry_run=True)] == [
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod}")
    ]
    assert uid_of(sandbox, selector) == uid
    # Still down: the same pod crash-loops (between two crashes it shows Running for a moment).
    settle(sandbox, lambda: crash_looping(sandbox, NS, selector) == [pod])


@pytest.mark.parametrize("incident", STORES)
def test_apply_deletes_the_pod_once_and_the_data_survives(
    sandbox: SandboxServer, incident: str
) -> None:
    make, selector, data, pod = STORES[incident]
    uid, before = uid_of(sandbox, selector), data(sandbox)
    assert before.isdigit() and int(before) > 0
    make(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    (change,) = outcome.changes
    assert change.status is ChangeStatus.APPLIED
    # Exactly the one DELETE: never a worker restart, never the other store.
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod}")
    ]
    assert uid_of(sandbox, selector) != uid and ready_count(sandbox, NS, selector) == 1
    assert crash_looping(sandbox, NS, selector) == []
    assert data(sandbox) == before
    (verified,) = outcome.verification
    assert verified.passed and f"after: {' '.join(change_marker(incident))}" in verified.detail
    assert before in verified.detail
    # Workers were a symptom: they come back with the broker, on their own.
    settle(sandbox, lambda: crash_looping(sandbox, NS, "app=alphaswarm-worker") == [])


def change_marker(incident: str) -> tuple[str, ...]:
    """The data check as the evidence shows it: logged in, the password only mentioned."""
    if incident == "postgres-down":
        login = ("-U", SANDBOX_POSTGRES_USER, "-d", SANDBOX_POSTGRES_DB)
        return ("psql", *login, "-tAc", TERRAFORM_RUNS_COUNT)
    return ("redis-cli", "dbsize", "(password on stdin)")


def test_production_postgres_escalates_without_deleting(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_ENVIRONMENT", "production")
    uid = uid_of(sandbox, "app=postgres")
    postgres_down(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.ESCALATED
    assert "managed Postgres" in outcome.message and "production" in outcome.message
    assert outcome.changes == ()
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []
    assert uid_of(sandbox, "app=postgres") == uid


def test_an_unknown_environment_is_production_and_the_postgres_pod_is_kept(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REMEDIATE_ENVIRONMENT unset (a manifest that forgot it): fail closed, even pre-approved,
    and the diagnosis and the outcome say why."""
    monkeypatch.delenv("REMEDIATE_ENVIRONMENT", raising=False)
    uid = uid_of(sandbox, "app=postgres")
    postgres_down(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.ESCALATED
    why = "REMEDIATE_ENVIRONMENT is not set: treated as production, the Postgres pod is not deleted"
    assert why in outcome.message
    assert outcome.diagnosis is not None and why in outcome.diagnosis.evidence
    assert outcome.changes == ()
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []
    assert uid_of(sandbox, "app=postgres") == uid


def test_production_redis_is_still_restarted(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The managed-Postgres rule is about Postgres; the runbook lets the StatefulSet bring
    redis-master-0 back anywhere."""
    monkeypatch.setenv("REMEDIATE_ENVIRONMENT", "production")
    redis_down(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert [r.path for r in sandbox.cluster.journal.mutations()] == [
        f"/api/v1/namespaces/{NS}/pods/{REDIS_POD}"
    ]


def test_healthy_stores_mean_nothing_to_do(sandbox: SandboxServer) -> None:
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.NOTHING_TO_DO and outcome.changes == ()
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []


@pytest.mark.parametrize("incident", STORES)
def test_one_request_in_ten_failing_still_mitigates_with_one_delete(
    sandbox: SandboxServer, incident: str
) -> None:
    make, _, data, pod = STORES[incident]
    before = data(sandbox)
    make(sandbox)
    sandbox.cluster.journal.clear()
    fail_one_request_in_ten(sandbox, seed=5)
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert [r.path for r in sandbox.cluster.journal.mutations()] == [
        f"/api/v1/namespaces/{NS}/pods/{pod}"
    ]
    assert any(r.status == 503 for r in sandbox.cluster.journal.requests())
    assert data(sandbox) == before


def test_the_flow_never_sleeps() -> None:
    assert_flow_never_sleeps(flows.stateful_failover)


def test_a_postgres_delete_waits_for_a_human_and_records_the_approver(
    sandbox: SandboxServer, store: str
) -> None:
    postgres_down(sandbox)
    sandbox.cluster.journal.clear()
    approver = resume_when_paused(
        f"stateful-failover: {NS}", {"approved": True, "approver": "erin", "comment": "go"}
    )
    outcome = remediate_stateful_failover(
        dry_run=False, verify_attempts=100, verify_delay_seconds=0.1, approval_poll_seconds=1
    )
    approver.join(timeout=5)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert [r.path for r in sandbox.cluster.journal.mutations()] == [
        f"/api/v1/namespaces/{NS}/pods/{POSTGRES_POD}"
    ]
    with session_for(store) as session:
        applied = session.exec(
            select(IncidentAction).where(IncidentAction.status == ActionStatus.APPLIED)
        ).one()
    assert "approved by erin" in applied.reason


def test_a_postgres_delete_nobody_approves_changes_nothing(sandbox: SandboxServer) -> None:
    uid = uid_of(sandbox, "app=postgres")
    postgres_down(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(
        dry_run=False, approval_timeout_seconds=2, approval_poll_seconds=1
    )
    assert outcome.status is OutcomeStatus.ESCALATED and "pause expired" in outcome.message
    assert sandbox.cluster.journal.mutations() == [] and uid_of(sandbox, "app=postgres") == uid


# -- the data check logs in as the images require ---------------------------------------------

IMAGE_REFUSALS = {
    # incident: (the settings left out, the image's own error)
    "postgres-down": (
        ("REMEDIATE_POSTGRES__USER", "REMEDIATE_POSTGRES__DATABASE"),
        'FATAL:  role "root" does not exist',
    ),
    "redis-down": (("REMEDIATE_REDIS__PASSWORD",), "NOAUTH Authentication required."),
}


@pytest.mark.parametrize("incident", STORES)
def test_without_the_logins_the_data_check_is_inconclusive_with_the_images_error(
    sandbox: SandboxServer, incident: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psql as root and redis-cli without a password are refused by the real images: the pod is
    back on its volumes, the data check is reported inconclusive with that error, never as the
    data surviving, and the run escalates rather than polling a refusal."""
    make, selector, data, pod = STORES[incident]
    unset, error = IMAGE_REFUSALS[incident]
    for variable in unset:
        monkeypatch.delenv(variable)
    uid, before = uid_of(sandbox, selector), data(sandbox)
    make(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.ESCALATED, outcome.message
    assert "its data could not be checked" in outcome.message and error in outcome.message
    (checked,) = outcome.verification
    assert not checked.passed and checked.detail.startswith("inconclusive: ")
    assert error in checked.detail and before not in checked.detail
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod}")
    ]
    assert uid_of(sandbox, selector) != uid and data(sandbox) == before
    # One look after the restart, not a poll of the refusal until the attempts run out.
    execs = sandbox.cluster.journal.requests(path=f"/pods/{pod}/exec$")
    assert len(execs) <= 3


def test_the_redis_password_is_on_no_argv_and_in_nothing_the_flow_writes(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    """The password reaches redis-cli through the exec's stdin: the API server's journal of the
    exec request, the outcome and the audit rows never hold it."""
    make, _, _, pod = STORES["redis-down"]
    make(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_stateful_failover(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    execs = sandbox.cluster.journal.requests(path=f"/pods/{pod}/exec$")
    assert execs and all(r.query.get("stdin") == ["true"] for r in execs)
    seen = repr([(r.path, r.query) for r in sandbox.cluster.journal.requests()])
    assert SANDBOX_REDIS_PASSWORD not in seen
    assert SANDBOX_REDIS_PASSWORD not in outcome.model_dump_json()
    with session_for(store) as session:
        rows = session.exec(select(IncidentAction)).all()
    assert rows and all(SANDBOX_REDIS_PASSWORD not in r.model_dump_json() for r in rows)
