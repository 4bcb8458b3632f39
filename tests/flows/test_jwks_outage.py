"""Runbook D end to end: each JWKS cause injected into the sandbox, told apart by the flow through
the real Prefect engine; the permissive flip only behind a firewalled operator UI, approved
(pre-approved or through pause/resume), applied exactly once, verified, its revert scheduled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client, tags
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run

from flows.jwks_outage import remediate_jwks_outage
from flows.revert_auth_enforce import revert_auth_enforce
from sandbox import injections
from sandbox.resources import DEPLOYMENT, INGRESS, POD
from sandbox.server import SandboxServer
from tasks.changes.models import ActionKind, ChangeStatus
from tasks.models.alerts import AlertBatch
from tasks.models.diagnosis import Action
from tasks.models.outcome import OutcomeStatus, Priority
from tasks.run_context import incident_tag
from tasks.triggers.intake import incidents_named, receive
from tests.flows.sandbox_settings import alert_payload, point_flows_at

NS, CORE, VAR = "alphaswarm", "alphaswarm-core", "ALPHASWARM_AUTH_ENFORCE"
CORE_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{CORE}"
FAST: dict[str, Any] = {"verify_attempts": 200, "approval_poll_seconds": 1}


@pytest.fixture(autouse=True)
def _settings(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    point_flows_at(sandbox, monkeypatch)


def inject(sandbox: SandboxServer, name: str) -> None:
    injections.inject(sandbox.cluster, name)
    sandbox.controllers.step()
    sandbox.cluster.journal.clear()


def template_env(sandbox: SandboxServer) -> str | None:
    deployment = sandbox.cluster.store.get(DEPLOYMENT, NS, CORE)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return next((e.get("value") for e in env if e["name"] == VAR), None)


def core_pods_env(sandbox: SandboxServer) -> list[str | None]:
    pods, _ = sandbox.cluster.store.list(POD, NS, labels=f"app={CORE}")
    return [
        next(
            (
                e.get("value")
                for e in p["spec"]["containers"][0].get("env") or []
                if e["name"] == VAR
            ),
            None,
        )
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    ]


def open_operator_ui(sandbox: SandboxServer) -> None:
    def drop_firewall(ingress: dict[str, Any]) -> None:
        ingress["metadata"]["annotations"].pop(
            "nginx.ingress.kubernetes.io/whitelist-source-range", None
        )

    sandbox.cluster.store.update(INGRESS, "alphaswarm-admin", "alphaswarm-cp", drop_firewall)


def assert_flipped_once(sandbox: SandboxServer) -> None:
    assert [(r.method, r.path) for r in sandbox.cluster.journal.mutations()] == [
        ("PATCH", CORE_PATH)
    ]
    assert template_env(sandbox) == "permissive"
    assert set(core_pods_env(sandbox)) == {"permissive"}


def test_dry_run_plans_the_flip_and_changes_nothing(sandbox: SandboxServer) -> None:
    inject(sandbox, "jwks-503")
    outcome = remediate_jwks_outage(dry_run=True, **FAST)
    assert outcome.status is OutcomeStatus.PLANNED
    assert outcome.diagnosis is not None
    assert outcome.diagnosis.action is Action.SET_AUTH_PERMISSIVE
    (plan,) = outcome.changes
    assert plan.status is ChangeStatus.PLANNED
    assert set(plan.after.values()) == {"permissive"}
    assert sandbox.cluster.journal.mutations() == []
    assert [r.path for r in sandbox.cluster.journal.mutations(include_dry_run=True)] == [CORE_PATH]
    assert template_env(sandbox) == "enforce" and outcome.bypass is None


def test_pre_approved_flip_is_applied_once_verified_and_its_revert_scheduled(
    sandbox: SandboxServer,
) -> None:
    inject(sandbox, "jwks-503:auth0-down")
    outcome = remediate_jwks_outage(
        dry_run=False, approve_permissive=True, approved_by="alice", **FAST
    )
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert_flipped_once(sandbox)
    assert all(v.passed for v in outcome.verification)
    # What a real cluster shows: the pods' own spec, and the symptom gone from their logs.
    assert any(
        "ALPHASWARM_AUTH_ENFORCE=permissive" in v.detail
        and "no longer log jwks_unreachable" in v.detail
        for v in outcome.verification
    )

    bypass = outcome.bypass
    assert bypass is not None and bypass.approved_by == "alice"
    assert bypass.revert.action is ActionKind.SET_ENV and bypass.revert.value == "enforce"
    assert bypass.revert.variable == VAR
    (follow_up,) = outcome.follow_ups
    assert follow_up.priority is Priority.P1 and follow_up.flow == "revert-auth-enforce"
    assert follow_up.parameters["restore_value"] == "enforce"
    assert follow_up.parameters["dry_run"] is False
    assert follow_up.scheduled_flow_run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(follow_up.scheduled_flow_run_id))
    assert run.state is not None and run.state.is_scheduled()
    assert run.parameters["restore_value"] == "enforce"
    assert "Hard rule bypassed" in outcome.to_markdown()

    # Auth0 recovers: the revert (run here instead of waiting for its schedule) restores it.
    injections.heal(sandbox.cluster)
    sandbox.cluster.journal.clear()
    reverted = revert_auth_enforce(**run.parameters)
    assert reverted.status is OutcomeStatus.MITIGATED, reverted.message
    assert [r.path for r in sandbox.cluster.journal.mutations()] == [CORE_PATH]
    assert template_env(sandbox) == "enforce"


def when_paused(flow_run_name: str, then: Callable[[UUID], object]) -> threading.Thread:
    """Once the named run pauses, call `then` with its id (in a thread of its own)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[flow_run_name]))
                )
                paused = [r for r in runs if r.state is not None and r.state.is_paused()]
                if paused:
                    then(paused[0].id)
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def resume_when_paused(flow_run_name: str, run_input: dict[str, Any]) -> threading.Thread:
    return when_paused(flow_run_name, lambda run_id: resume_flow_run(run_id, run_input=run_input))


def test_flip_waits_for_a_human_and_applies_once_approved(sandbox: SandboxServer) -> None:
    inject(sandbox, "jwks-503")
    approver = resume_when_paused(
        f"jwks-outage: {NS}/{CORE}",
        {"approved": True, "approver": "bob", "comment": "auth0 status red"},
    )
    outcome = remediate_jwks_outage(dry_run=False, **FAST)
    approver.join(timeout=5)
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert outcome.bypass is not None and outcome.bypass.approved_by == "bob"
    assert outcome.bypass.approval_comment == "auth0 status red"
    assert_flipped_once(sandbox)


def test_a_refused_flip_changes_nothing(sandbox: SandboxServer) -> None:
    inject(sandbox, "jwks-503")
    refuser = resume_when_paused(
        f"jwks-outage: {NS}/{CORE}", {"approved": False, "approver": "carol", "comment": "wait"}
    )
    outcome = remediate_jwks_outage(dry_run=False, **FAST)
    refuser.join(timeout=5)
    assert outcome.status is OutcomeStatus.ESCALATED and "carol" in outcome.message
    assert sandbox.cluster.journal.mutations() == [] and template_env(sandbox) == "enforce"
    assert outcome.bypass is None and outcome.follow_ups == ()


def test_never_flips_when_the_operator_ui_is_not_firewalled(sandbox: SandboxServer) -> None:
    inject(sandbox, "jwks-503")
    open_operator_ui(sandbox)
    outcome = remediate_jwks_outage(
        dry_run=False, approve_permissive=True, approved_by="alice", **FAST
    )
    assert outcome.status is OutcomeStatus.ESCALATED
    assert outcome.diagnosis is not None
    assert "not firewalled" in outcome.diagnosis.summary
    assert any("operator UI Ingress: NOT firewalled" in e for e in outcome.diagnosis.evidence)
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []
    assert template_env(sandbox) == "enforce"


@pytest.mark.parametrize(
    ("incident", "cause", "pod_evidence"),
    [
        ("jwks-503:egress-blocked", "outbound 443 is blocked by a NetworkPolicy", "curl exit 28"),
        ("jwks-503:dns-failure", "DNS resolution fails inside the cluster", "curl exit 6"),
    ],
)
def test_egress_and_dns_are_told_apart_and_get_the_runbook_mitigation(
    sandbox: SandboxServer, incident: str, cause: str, pod_evidence: str
) -> None:
    """The cause and its real fix are named; the mitigation is the runbook's one flip."""
    inject(sandbox, incident)
    outcome = remediate_jwks_outage(
        dry_run=False, approve_permissive=True, approved_by="alice", **FAST
    )
    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert outcome.diagnosis is not None and outcome.diagnosis.summary.startswith(cause)
    assert any(pod_evidence in e for e in outcome.diagnosis.evidence), outcome.diagnosis.evidence
    assert any("JWKS from this process: ok" in e for e in outcome.diagnosis.evidence)
    assert outcome.bypass is not None
    assert [r.method for r in sandbox.cluster.journal.mutations()] == ["PATCH"]


def open_incident(status: str = "firing") -> int:
    """The JWKS alert through the intake's store, as Alertmanager would send it: its incident."""
    payload = alert_payload("jwks-503")
    for alert in payload["alerts"]:
        alert["status"] = status
        if status == "resolved":
            alert["endsAt"] = "2026-12-02T09:00:00Z"
    receipt = receive(AlertBatch.model_validate(payload))
    (incident,) = incidents_named(receipt)
    return incident


def test_an_approval_nobody_gives_expires_and_changes_nothing(sandbox: SandboxServer) -> None:
    inject(sandbox, "jwks-503")
    outcome = remediate_jwks_outage(
        dry_run=False, verify_attempts=5, approval_timeout_seconds=2, approval_poll_seconds=1
    )
    assert outcome.status is OutcomeStatus.ESCALATED and "pause expired" in outcome.message
    assert sandbox.cluster.journal.mutations() == [] and template_env(sandbox) == "enforce"


def test_the_pause_ends_with_no_when_the_incidents_alerts_resolve_first(
    sandbox: SandboxServer,
) -> None:
    inject(sandbox, "jwks-503")
    incident = open_incident()
    resolver = when_paused(f"jwks-outage: {NS}/{CORE}", lambda _: open_incident("resolved"))
    with tags(incident_tag(incident)):
        outcome = remediate_jwks_outage(dry_run=False, **FAST)
    resolver.join(timeout=5)
    assert outcome.status is OutcomeStatus.ESCALATED and "alerts resolved" in outcome.message
    assert sandbox.cluster.journal.mutations() == [] and template_env(sandbox) == "enforce"


def test_an_approval_given_after_the_alerts_resolved_is_refused(sandbox: SandboxServer) -> None:
    inject(sandbox, "jwks-503")
    incident = open_incident()

    def resolve_then_approve(run_id: UUID) -> None:
        open_incident("resolved")
        resume_flow_run(run_id, run_input={"approved": True, "approver": "dave", "comment": ""})

    approver = when_paused(f"jwks-outage: {NS}/{CORE}", resolve_then_approve)
    with tags(incident_tag(incident)):
        # The watcher looks every 60 s: only the check after the answer can catch this one.
        outcome = remediate_jwks_outage(dry_run=False, verify_attempts=5, approval_poll_seconds=60)
    approver.join(timeout=5)
    assert outcome.status is OutcomeStatus.ESCALATED
    assert "dave after the incident's alerts resolved" in outcome.message
    assert sandbox.cluster.journal.mutations() == [] and template_env(sandbox) == "enforce"
