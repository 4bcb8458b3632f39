"""Runbook E end to end: both ingress incidents injected, the flow run through the real Prefect
engine, judged by the sandbox's journal and state. Each incident is healed only by restarting
the right Deployment, so a mitigated outcome on the wrong target could not happen by luck."""

from __future__ import annotations

from typing import Any

import pytest

import flows.ingress_503
from flows.ingress_503 import remediate_ingress_503
from sandbox.injections import inject
from sandbox.server import SandboxServer
from tasks.changes.models import ChangeStatus
from tasks.models.diagnosis import Action, Scenario
from tasks.models.outcome import OutcomeStatus
from tests.flows.sandbox_state import (
    assert_flow_never_sleeps,
    crash_looping,
    fail_one_request_in_ten,
    ready_endpoints,
    settle,
)

NS, INGRESS_NS = "alphaswarm", "ingress-nginx"
CLIENT, CONTROLLER = "alphaswarm-client", "ingress-nginx-controller"
CONTROLLER_PODS = "app.kubernetes.io/name=ingress-nginx"
CLIENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{CLIENT}"
CONTROLLER_PATH = f"/apis/apps/v1/namespaces/{INGRESS_NS}/deployments/{CONTROLLER}"
FAST: dict[str, Any] = {"verify_attempts": 100, "verify_delay_seconds": 0.1}


def client_wedged(sandbox: SandboxServer) -> None:
    inject(sandbox.cluster, "ingress-503")
    settle(sandbox, lambda: ready_endpoints(sandbox, NS, CLIENT) == 0)


def controller_down(sandbox: SandboxServer) -> None:
    inject(sandbox.cluster, "ingress-503:ingress-controller-down")
    settle(sandbox, lambda: len(crash_looping(sandbox, INGRESS_NS, CONTROLLER_PODS)) == 1)


INCIDENTS = {
    "ingress-503": (client_wedged, CLIENT_PATH),
    "ingress-controller-down": (controller_down, CONTROLLER_PATH),
}


@pytest.mark.parametrize("incident", INCIDENTS)
def test_dry_run_returns_the_plan_and_changes_nothing(
    sandbox: SandboxServer, incident: str
) -> None:
    make, path = INCIDENTS[incident]
    make(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_ingress_503(dry_run=True, **FAST)
    assert outcome.status is OutcomeStatus.PLANNED and outcome.scenario is Scenario.INGRESS_503
    assert outcome.diagnosis is not None
    assert outcome.diagnosis.action is Action.RESTART_DEPLOYMENT
    (plan,) = outcome.changes
    assert plan.status is ChangeStatus.PLANNED and plan.after["restartedAt"]
    journal = sandbox.cluster.journal
    assert journal.mutations() == []
    assert [(r.method, r.path) for r in journal.mutations(include_dry_run=True)] == [
        ("PATCH", path)
    ]


def test_wedged_clients_are_restarted_once_and_the_endpoints_come_back(
    sandbox: SandboxServer,
) -> None:
    client_wedged(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_ingress_503(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert outcome.diagnosis is not None
    assert any(
        "Readiness probe failed: HTTP probe failed with statuscode: 503" in e
        for e in outcome.diagnosis.evidence
    )
    (change,) = outcome.changes
    assert change.status is ChangeStatus.APPLIED and change.target.name == CLIENT
    # Only the client: the controller was never the problem.
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("PATCH", CLIENT_PATH)
    ]
    assert ready_endpoints(sandbox, NS, CLIENT) == 2
    assert outcome.verification and all(v.passed for v in outcome.verification)


def test_a_crashing_controller_is_restarted_not_the_backends(sandbox: SandboxServer) -> None:
    controller_down(sandbox)
    sandbox.cluster.journal.clear()
    outcome = remediate_ingress_503(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert outcome.diagnosis is not None
    assert any("Address already in use" in e for e in outcome.diagnosis.evidence) or any(
        "crash-looping controller pods" in e for e in outcome.diagnosis.evidence
    )
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("PATCH", CONTROLLER_PATH)
    ]
    assert crash_looping(sandbox, INGRESS_NS, CONTROLLER_PODS) == []
    assert ready_endpoints(sandbox, INGRESS_NS, CONTROLLER) == 1
    assert ready_endpoints(sandbox, NS, CLIENT) == 2


def test_healthy_ingress_means_nothing_to_do(sandbox: SandboxServer) -> None:
    outcome = remediate_ingress_503(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.NOTHING_TO_DO and outcome.changes == ()
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []


@pytest.mark.parametrize("incident", INCIDENTS)
def test_one_request_in_ten_failing_still_mitigates_with_one_restart(
    sandbox: SandboxServer, incident: str
) -> None:
    make, path = INCIDENTS[incident]
    make(sandbox)
    sandbox.cluster.journal.clear()
    fail_one_request_in_ten(sandbox, seed=3)
    outcome = remediate_ingress_503(dry_run=False, **FAST)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert [r.path for r in sandbox.cluster.journal.mutations()] == [path]
    assert any(r.status == 503 for r in sandbox.cluster.journal.requests())
    assert ready_endpoints(sandbox, NS, CLIENT) == 2


def test_the_flow_never_sleeps() -> None:
    assert_flow_never_sleeps(flows.ingress_503)
