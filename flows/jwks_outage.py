"""Runbook D — Auth0 JWKS returns 503.

    Symptom: every authenticated request fails with jwks_unreachable.
    # Probe JWKS directly from inside a pod
    kubectl exec -n alphaswarm deploy/alphaswarm-core -- curl -fsS https://your-tenant.us.auth0.com/.well-known/jwks.json
    # Common causes:
    # - Auth0 service incident (https://status.auth0.com/)
    # - Outbound 443 blocked by NetworkPolicy (check network-policies.yaml)
    # - DNS resolution failure inside the cluster
    # Mitigation: flip ALPHASWARM_AUTH_ENFORCE to permissive for read-only routes
    # while you wait for Auth0 to recover. ONLY do this if your operator
    # UI is firewalled at the Ingress layer.
    kubectl set env -n alphaswarm deploy/alphaswarm-core ALPHASWARM_AUTH_ENFORCE=permissive

The flow probes JWKS from this process and from a core pod, reads the Egress NetworkPolicies and
the operator UI's Ingress, and tells the three causes apart (`diagnose_jwks`). Whatever the
cause, the runbook has one mitigation, and only behind a firewalled operator UI; the diagnosis
names the cause and its real fix (Auth0 recovering, the egress rule restored, DNS repaired),
and the scheduled revert waits until JWKS answers from inside the pod again.

The flip is a hard-rule bypass (DESIGN.md, "Safety of every action"): the server-side dry run is
shown first, then a human approves it through `pause_flow_run(wait_for_input=...)` unless the
caller pre-approved it (`approve_permissive`, an explicit operator choice). The outcome and an
artifact record who approved and the exact Revert, and the revert is scheduled as a future run
of the `revert-auth-enforce` deployment (`flows.revert_auth_enforce`), which restores the old
value once JWKS answers. That run exists in Prefect as SCHEDULED; a process serving the
deployment executes it. If it cannot be scheduled, the P1 follow-up says so instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.approvals import ChangeApproval, approved_over_limits, ask_approval
from flows.revert_auth_enforce import (
    RevertAuthEnforceParams,
    ScheduledRun,
    revert_follow_up,
    schedule_revert,
)
from flows.runs import configured, named, tell, tell_change, tell_diagnosis, tell_outcome
from tasks.changes.models import ChangeRecord, undo
from tasks.changes.mutations import set_deployment_env
from tasks.diagnoses.findings import JWKS_SYMPTOM
from tasks.diagnoses.platform import PERMISSIVE, diagnose_jwks
from tasks.models.diagnosis import Action, Diagnosis
from tasks.models.outcome import HardRuleBypass, Outcome, OutcomeStatus, Verification
from tasks.models.scenario_call import ScenarioCall
from tasks.models.snapshots import JwksSnapshot
from tasks.probes.platform import probe_jwks
from tasks.records.artifacts import (
    artifact_key,
    publish_diagnosis,
    publish_evidence,
    publish_outcome,
)
from tasks.retries import NotYetHealthy
from tasks.settings import Settings
from tasks.verifies import VerifyFailed, verify_pods_run_env, verify_rollout_complete

HARD_RULE = "ALPHASWARM_AUTH_ENFORCE stays enforcing (permissive only while Auth0 is down)"


class JwksOutageParams(BaseModel):
    """Where to look, whether to act, and whether the bypass is approved in advance."""

    namespace: str = Field(default_factory=lambda: Settings().workloads.namespace)
    deployment: str = Field(default_factory=lambda: Settings().workloads.core_deployment)
    admin_namespace: str = Field(default_factory=lambda: Settings().workloads.admin_namespace)
    operator_ingress: str = Field(
        default_factory=lambda: Settings().workloads.control_plane_deployment,
        description="the operator UI's Ingress, which must be firewalled for the flip",
    )
    auth_variable: str = Field(default_factory=lambda: Settings().workloads.auth_enforce_variable)
    jwks_url: str = Field(default_factory=lambda: Settings().auth.jwks_url)
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    approve_permissive: bool = Field(
        default=False,
        description="pre-approve the permissive flip (a hard-rule bypass); otherwise the run "
        "pauses for a human",
    )
    approved_by: str = Field(default="", description="who pre-approved (with approve_permissive)")
    approval_timeout_seconds: int = Field(default=3600, ge=1)
    approval_poll_seconds: int = Field(default=10, ge=1)
    revert_check_after_seconds: int = Field(
        default_factory=lambda: Settings().auth.revert_check_after_seconds,
        ge=1,
        description="when the scheduled revert first checks JWKS",
    )
    revert_healthy_seconds: float = Field(
        default_factory=lambda: Settings().auth.revert_healthy_seconds,
        ge=0,
        description="how long JWKS must keep answering before the revert restores enforcement",
    )
    verify_attempts: int = Field(default=120, ge=1, description="polls of each verify")

    @classmethod
    def from_call(cls, call: ScenarioCall) -> JwksOutageParams:
        return cls(
            **call.where(namespace="namespace", deployment="target"),
            dry_run=call.dry_run,
            approve_permissive=call.approve_permissive,
            approved_by=call.approved_by,
            approval_timeout_seconds=call.approval_timeout_seconds,
            **call.verify.overrides(delay=False),
        )


def _evidence(snapshot: JwksSnapshot) -> list[str]:
    lines = [f"$ curl -fsS {snapshot.from_here.url if snapshot.from_here else '(skipped)'}"]
    if snapshot.from_here is not None:
        here = snapshot.from_here
        lines.append(
            "ok" if here.ok else f"{here.failure} {here.status or ''} {here.detail}".strip()
        )
    if snapshot.from_pod is not None:
        pod = snapshot.from_pod
        lines.append(f"$ kubectl exec -n {snapshot.namespace} {pod.pod} -- curl -fsS <jwks>")
        lines.append(f"exit {pod.exit_code}, {pod.keys} key(s) {pod.stderr}".strip())
    lines += [f"Egress policy {p.name}: {len(p.egress)} rule(s)" for p in snapshot.egress_policies]
    ingress = snapshot.operator_ingress
    lines.append(
        f"operator Ingress {ingress.name}: {dict(ingress.annotations)}"
        if ingress is not None
        else "operator Ingress: not found"
    )
    return lines


def _approve(params: JwksOutageParams, plan: ChangeRecord, evidence: list[str]) -> ChangeApproval:
    """The approval: given in advance, or asked for on the paused run."""
    if params.approve_permissive:
        return ChangeApproval(
            approved=True,
            approver=params.approved_by or "pre-approved (approve_permissive parameter)",
            comment="approved before the run",
        )
    return ask_approval(
        "Approve a hard-rule bypass? Auth0's JWKS is down",
        plan,
        [
            f"Read-only routes will skip JWT verification until the scheduled revert restores "
            f"{params.auth_variable}.",
            *evidence,
        ],
        timeout_seconds=params.approval_timeout_seconds,
        poll_seconds=params.approval_poll_seconds,
        key="approve-permissive",
    )


def _verify(params: JwksOutageParams) -> tuple[Verification, ...]:
    attempts = params.verify_attempts
    rollout = verify_rollout_complete.with_options(retries=attempts)(
        params.namespace, params.deployment
    )
    pods = verify_pods_run_env.with_options(retries=attempts)(
        params.namespace, params.deployment, params.auth_variable, PERMISSIVE, JWKS_SYMPTOM
    )
    return (
        Verification(
            check="rollout complete (new pods carry the env)", passed=True, detail=rollout.message
        ),
        Verification(
            check="read-only routes served permissively",
            passed=True,
            detail=(
                f"{', '.join(pods)} run {params.auth_variable}={PERMISSIVE} and no longer log "
                f"{JWKS_SYMPTOM}"
            ),
        ),
    )


def _record_bypass(
    params: JwksOutageParams,
    diagnosis: Diagnosis,
    change: ChangeRecord,
    approval: ChangeApproval,
    verification: tuple[Verification, ...],
) -> Outcome:
    assert change.revert is not None  # an applied set-env always carries its revert
    revert = RevertAuthEnforceParams(
        namespace=params.namespace,
        deployment=params.deployment,
        variable=params.auth_variable,
        restore_value=change.revert.value if isinstance(change.revert.value, str) else None,
        bypass_value=PERMISSIVE,
        dry_run=False,
        healthy_for_seconds=params.revert_healthy_seconds,
        recheck_seconds=params.revert_check_after_seconds,
        follow_up_key=f"revert-{change.key}",
    )
    scheduled: ScheduledRun | None = None
    note = ""
    try:
        undo(change.revert)  # refused when no plain value can be written back
        scheduled = schedule_revert(
            revert, params.revert_check_after_seconds, idempotency_key=f"revert-{change.key}"
        )
    except Exception as exc:  # the bypass stands either way; the follow-up must say so
        note = f"could not schedule the revert run ({exc}); do it by hand"
    if scheduled is not None:
        tell(
            "revert scheduled: flow run %s at %s UTC",
            scheduled.flow_run_id,
            f"{scheduled.scheduled_for:%Y-%m-%d %H:%M:%S}",
        )
    else:
        tell("revert NOT scheduled: %s", note)
    bypass = HardRuleBypass(
        rule=HARD_RULE,
        change_key=change.key,
        approved_by=approval.approver,
        approval_comment=approval.comment,
        revert=change.revert,
    )
    outcome = Outcome.mitigated(diagnosis, (change,), verification).model_copy(
        update={"bypass": bypass, "follow_ups": (revert_follow_up(revert, scheduled, note),)}
    )
    create_markdown_artifact(
        "# Hard rule bypassed\n\n"
        f"- rule: {HARD_RULE}\n- change: `{change.summary}` (key `{change.key}`)\n"
        f"- approved by: {approval.approver} {approval.comment}\n"
        f"- revert: set {revert.variable}="
        f"{revert.restore_value if revert.restore_value is not None else '(unset)'}\n"
        + (
            f"- scheduled revert: flow run `{scheduled.flow_run_id}` at "
            f"{scheduled.scheduled_for:%Y-%m-%d %H:%M:%S} UTC\n"
            if scheduled is not None
            else f"- scheduled revert: NONE — {note}\n"
        ),
        key=artifact_key("jwks-outage-bypass"),
        description="Hard-rule bypass: who approved it and how it is undone",
    )
    return outcome


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target: the Deployment whose auth would be flipped."""
    w = Settings().workloads
    return f"{p.get('namespace') or w.namespace}/{p.get('deployment') or w.core_deployment}"


@flow(name="jwks-outage", flow_run_name=named("jwks-outage", _subject))
def remediate_jwks_outage(
    namespace: str = "",
    deployment: str = "",
    admin_namespace: str = "",
    operator_ingress: str = "",
    auth_variable: str = "",
    jwks_url: str = "",
    dry_run: bool = True,
    approve_permissive: bool = False,
    approved_by: str = "",
    approval_timeout_seconds: int = 3600,
    approval_poll_seconds: int = 10,
    revert_check_after_seconds: int | None = None,
    revert_healthy_seconds: float | None = None,
    verify_attempts: int = 120,
) -> Outcome:
    """Runbook D: probe JWKS here and in a pod, tell the cause, flip to permissive only for an
    Auth0 outage behind a firewalled operator UI, approved, verified, revert scheduled.

    Args:
        namespace: where the core Deployment runs; empty: the configured namespace (alphaswarm)
        deployment: the Deployment that verifies JWTs; empty: the configured core Deployment
            (alphaswarm-core)
        admin_namespace: where the operator UI runs; empty: the configured admin namespace
            (alphaswarm-admin)
        operator_ingress: the operator UI's Ingress, which must be firewalled for the flip;
            empty: the configured control-plane name (alphaswarm-cp)
        auth_variable: the variable the flip sets to permissive; empty: the configured one
            (ALPHASWARM_AUTH_ENFORCE)
        jwks_url: the Auth0 JWKS URL to probe; empty: the configured REMEDIATE_AUTH__JWKS_URL
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        approve_permissive: pre-approve the permissive flip (a hard-rule bypass); otherwise the
            run pauses for a human to approve it
        approved_by: who pre-approved the flip (with approve_permissive)
        approval_timeout_seconds: how long the paused run waits for an approval before it
            escalates
        approval_poll_seconds: how often the paused run looks for the approval
        revert_check_after_seconds: when the scheduled revert first checks JWKS; unset: the
            configured REMEDIATE_AUTH__REVERT_CHECK_AFTER_SECONDS
        revert_healthy_seconds: how long JWKS must keep answering before the revert restores
            enforcement; unset: the configured REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS
        verify_attempts: polls of each verification before it counts as failed
    """
    params = JwksOutageParams(
        **configured(
            namespace=namespace,
            deployment=deployment,
            admin_namespace=admin_namespace,
            operator_ingress=operator_ingress,
            auth_variable=auth_variable,
            jwks_url=jwks_url,
            revert_check_after_seconds=revert_check_after_seconds,
            revert_healthy_seconds=revert_healthy_seconds,
        ),
        dry_run=dry_run,
        approve_permissive=approve_permissive,
        approved_by=approved_by,
        approval_timeout_seconds=approval_timeout_seconds,
        approval_poll_seconds=approval_poll_seconds,
        verify_attempts=verify_attempts,
    )
    return tell_outcome(_remediate(params))


def _remediate(params: JwksOutageParams) -> Outcome:
    snapshot = probe_jwks(
        params.namespace,
        params.deployment,
        params.jwks_url,
        params.admin_namespace,
        params.operator_ingress,
        params.auth_variable,
    )
    publish_evidence(
        "JWKS probes, egress and the operator UI", _evidence(snapshot), "jwks-outage-evidence"
    )
    diagnosis = diagnose_jwks(snapshot)
    publish_diagnosis(diagnosis, "jwks-outage-diagnosis")
    tell_diagnosis(diagnosis)
    if diagnosis.action is not Action.SET_AUTH_PERMISSIVE:
        outcome = (
            Outcome.nothing_to_do(diagnosis)
            if diagnosis.action is Action.NONE
            else Outcome.escalated(diagnosis)
        )
        publish_outcome(outcome, "jwks-outage-outcome")
        return outcome
    plan = set_deployment_env(
        params.namespace,
        params.deployment,
        params.auth_variable,
        PERMISSIVE,
        dry_run=True,
        reason=diagnosis.summary,
    )
    tell_change(plan)
    if params.dry_run:
        outcome = Outcome.planned(diagnosis, plan)
        publish_outcome(outcome, "jwks-outage-outcome")
        return outcome
    approval = _approve(params, plan, list(diagnosis.evidence))
    if not approval.approved:
        why = f"the permissive flip was refused by {approval.approver}: {approval.comment}"
        outcome = Outcome.escalated(diagnosis, why, plan)
        publish_outcome(outcome, "jwks-outage-outcome")
        return outcome
    change = approved_over_limits(
        set_deployment_env,
        params.namespace,
        params.deployment,
        params.auth_variable,
        PERMISSIVE,
        dry_run=False,
        reason=f"{diagnosis.summary} (approved by {approval.approver})",
        evidence=diagnosis.evidence,
    )
    tell_change(change)
    try:
        verification = _verify(params)
    except (NotYetHealthy, VerifyFailed) as exc:
        failed = Verification(check="permissive auth served", passed=False, detail=str(exc))
        verification = (failed,)
    outcome = _record_bypass(params, diagnosis, change, approval, verification)
    if not all(v.passed for v in verification):
        outcome = outcome.model_copy(
            update={
                "status": OutcomeStatus.FAILED,
                "message": f"the flip did not take: {verification[0].detail}",
            }
        )
    publish_outcome(outcome, "jwks-outage-outcome")
    return outcome
