"""The revert of runbook D's hard-rule bypass: put ALPHASWARM_AUTH_ENFORCE back once JWKS answers.

    # Post-incident: if a hard rule was bypassed (e.g. ALPHASWARM_AUTH_ENFORCE flipped to
    # permissive), schedule the revert as a P1 task.

`remediate_jwks_outage` schedules this flow as a future run of the `revert-auth-enforce`
deployment when it applies the permissive flip. The run sits in Prefect as SCHEDULED (and shows
as Late in the UI if nothing picks it up): a process serving that deployment executes it.

When it runs, JWKS must answer, and keep answering from a core pod and from here for
`healthy_for_seconds` (REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS), before anything is restored: an
Auth0 that flaps is not back. While JWKS fails it leaves permissive in place and schedules its
own next check, so the revert keeps coming back until it can be done. It restores exactly the
value the bypass replaced, through the gate, refuses to overwrite a value someone set by hand
since, and once enforcement is back it closes the P1 follow-up in the incident store, resolves
the incident and re-renders its post-incident report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType
from pydantic import BaseModel, ConfigDict, Field

from flows.approvals import approved_over_limits
from flows.post_incident import post_incident
from flows.runs import configured, named, tell, tell_change, tell_diagnosis, tell_outcome
from tasks.changes.mutations import set_deployment_env
from tasks.diagnoses.platform import PERMISSIVE, diagnose_auth_revert
from tasks.models.diagnosis import Action, Diagnosis
from tasks.models.outcome import FollowUp, Outcome, OutcomeStatus, Priority, Verification
from tasks.probes.platform import probe_jwks
from tasks.records.artifacts import publish_diagnosis, publish_outcome
from tasks.records.steps import close_follow_up, record_rescheduled
from tasks.retries import NotYetHealthy, spread_polls
from tasks.run_context import PREFIX as INCIDENT_TAG_PREFIX
from tasks.run_context import current_tags
from tasks.settings import Settings
from tasks.verifies import VerifyFailed, verify_jwks_healthy_for, verify_rollout_complete

FLOW_NAME = "revert-auth-enforce"
DEPLOYMENT_NAME = "revert-auth-enforce"
DEPLOYMENT_DESCRIPTION = "Restore ALPHASWARM_AUTH_ENFORCE after runbook D's permissive bypass"
DEPLOYMENT_TAGS = ("hard-rule-revert", "P1")
HEALTHY_POLL_MAX_SECONDS = 10.0


class RevertAuthEnforceParams(BaseModel):
    """Which variable to restore, to what, and how often to come back while JWKS still fails."""

    model_config = ConfigDict(frozen=True)

    namespace: str = Field(default_factory=lambda: Settings().workloads.namespace)
    deployment: str = Field(default_factory=lambda: Settings().workloads.core_deployment)
    variable: str = Field(default_factory=lambda: Settings().workloads.auth_enforce_variable)
    restore_value: str | None = Field(
        default=None, description="the value before the bypass; None: the variable was unset"
    )
    bypass_value: str = PERMISSIVE
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    recheck_seconds: int = Field(
        default_factory=lambda: Settings().auth.revert_check_after_seconds,
        ge=1,
        description="when JWKS still fails, check again after",
    )
    healthy_for_seconds: float = Field(
        default_factory=lambda: Settings().auth.revert_healthy_seconds,
        ge=0,
        description="how long JWKS must keep answering before enforcement is restored",
    )
    follow_up_key: str = Field(
        default="", description="the P1 follow-up in the incident store this revert closes"
    )
    verify_attempts: int = Field(default=120, ge=1)

    def as_follow_up_parameters(self) -> dict[str, str | int | float | bool | None]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "variable": self.variable,
            "restore_value": self.restore_value,
            "bypass_value": self.bypass_value,
            "dry_run": self.dry_run,
            "recheck_seconds": self.recheck_seconds,
            "healthy_for_seconds": self.healthy_for_seconds,
        }


class ScheduledRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    flow_run_id: str
    deployment_id: str
    scheduled_for: datetime


@task(name="schedule-auth-enforce-revert", cache_policy=NO_CACHE)
def schedule_revert(
    params: RevertAuthEnforceParams, delay_seconds: int, idempotency_key: str | None = None
) -> ScheduledRun:
    """Register the `revert-auth-enforce` deployment (no work pool: a `serve` process runs it)
    and create one SCHEDULED flow run of it `delay_seconds` from now."""
    deployment: RunnerDeployment = revert_auth_enforce.to_deployment(  # type: ignore[assignment]
        name=DEPLOYMENT_NAME,
        tags=list(DEPLOYMENT_TAGS),
        description=DEPLOYMENT_DESCRIPTION,
        entrypoint_type=EntrypointType.MODULE_PATH,  # as deployments/table.py serves it
    )
    deployment_id = deployment.apply()
    when = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    # The incident this run works for travels along, so the revert's audit row links to it.
    incident = sorted(t for t in current_tags() if t.startswith(INCIDENT_TAG_PREFIX))
    run: FlowRun = run_deployment(  # type: ignore[assignment]
        f"{FLOW_NAME}/{DEPLOYMENT_NAME}",
        parameters=params.model_dump(mode="json"),
        scheduled_time=when,
        timeout=0,
        as_subflow=False,
        tags=[*DEPLOYMENT_TAGS, *incident],
        idempotency_key=idempotency_key,
    )
    return ScheduledRun(
        flow_run_id=str(run.id), deployment_id=str(deployment_id), scheduled_for=when
    )


def revert_follow_up(
    params: RevertAuthEnforceParams, scheduled: ScheduledRun | None, note: str = ""
) -> FollowUp:
    restored = params.restore_value if params.restore_value is not None else "(unset)"
    return FollowUp(
        key=params.follow_up_key,
        priority=Priority.P1,
        title=f"revert {params.variable} on {params.namespace}/{params.deployment} to {restored}",
        flow=FLOW_NAME,
        parameters=params.as_follow_up_parameters(),
        condition="the JWKS probe is healthy from a core pod (and from here)",
        scheduled_flow_run_id=scheduled.flow_run_id if scheduled is not None else None,
        scheduled_for=scheduled.scheduled_for if scheduled is not None else None,
        note=note,
    )


def _still_bypassed(params: RevertAuthEnforceParams, diagnosis: Diagnosis, why: str) -> Outcome:
    """Leave permissive in place; the P1 stays open and this revert comes back later."""
    follow_ups: tuple[FollowUp, ...] = ()
    if not params.dry_run:
        again = schedule_revert(params, params.recheck_seconds)
        tell(
            "enforcement left %s (%s): the revert comes back at %s UTC",
            params.bypass_value,
            why,
            f"{again.scheduled_for:%Y-%m-%d %H:%M:%S}",
        )
        follow_ups = (revert_follow_up(params, again, f"rescheduled: {why}"),)
        if params.follow_up_key:
            record_rescheduled(follow_ups[0], why)
    return Outcome.escalated(diagnosis, why).model_copy(update={"follow_ups": follow_ups})


def _restore(params: RevertAuthEnforceParams, diagnosis: Diagnosis) -> Outcome:
    change = approved_over_limits(
        set_deployment_env,
        params.namespace,
        params.deployment,
        params.variable,
        params.restore_value,
        dry_run=params.dry_run,
        reason=diagnosis.summary,
        evidence=diagnosis.evidence,
    )
    tell_change(change)
    if params.dry_run:
        return Outcome.planned(diagnosis, change)
    check = "rollout complete with the restored value"
    try:
        rollout = verify_rollout_complete.with_options(retries=params.verify_attempts)(
            params.namespace, params.deployment
        )
    except (NotYetHealthy, VerifyFailed) as exc:
        failed = Verification(check=check, passed=False, detail=str(exc))
        return Outcome.failed(diagnosis, str(exc), (change,), (failed,))
    done = Verification(check=check, passed=True, detail=rollout.message)
    return Outcome.mitigated(diagnosis, (change,), (done,))


def _healthy_long_enough(params: RevertAuthEnforceParams, jwks_url: str) -> Verification:
    """JWKS keeps answering for healthy_for_seconds: about ten polls, none more than 10 s apart."""
    retries, delay = spread_polls(
        params.healthy_for_seconds, shortest=0.2, longest=HEALTHY_POLL_MAX_SECONDS
    )
    watched = verify_jwks_healthy_for.with_options(retries=retries, retry_delay_seconds=delay)(
        params.namespace, params.deployment, jwks_url, datetime.now(UTC), params.healthy_for_seconds
    )
    return Verification(
        check=f"JWKS healthy for {params.healthy_for_seconds:g} s",
        passed=True,
        detail=f"answered from a core pod and from here on every poll for {watched:.0f} s",
    )


def _close_p1(params: RevertAuthEnforceParams, outcome: Outcome) -> None:
    """Enforcement is back: the P1 is done, the incident resolved, its report brought up to date."""
    if not params.follow_up_key or params.dry_run:
        return
    restored = params.restore_value if params.restore_value is not None else "(unset)"
    incident = close_follow_up(
        params.follow_up_key,
        f"{params.variable} is {restored} again: {outcome.message}",
        placeholder=revert_follow_up(params, None),
        resolve=f"the hard-rule bypass was reverted: {params.variable} is {restored} again",
    )
    if incident is not None:
        post_incident(incident_id=incident.id)


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target: the Deployment whose auth variable is restored."""
    w = Settings().workloads
    return f"{p.get('namespace') or w.namespace}/{p.get('deployment') or w.core_deployment}"


@flow(name=FLOW_NAME, flow_run_name=named(FLOW_NAME, _subject))
def revert_auth_enforce(
    namespace: str = "",
    deployment: str = "",
    variable: str = "",
    restore_value: str | None = None,
    bypass_value: str = PERMISSIVE,
    dry_run: bool = True,
    recheck_seconds: int | None = None,
    healthy_for_seconds: float | None = None,
    follow_up_key: str = "",
    verify_attempts: int = 120,
) -> Outcome:
    """Restore the auth variable once JWKS has answered for a while; otherwise keep permissive
    and come back. Closes the P1 follow-up when enforcement is back.

    Args:
        namespace: where the core Deployment runs; empty: the configured namespace (alphaswarm)
        deployment: the Deployment whose variable was flipped; empty: the configured core
            Deployment (alphaswarm-core)
        variable: the variable to restore; empty: the configured one (ALPHASWARM_AUTH_ENFORCE)
        restore_value: the value before the bypass; unset: the variable was unset, and is
            removed again
        bypass_value: the value the bypass set; the revert refuses to overwrite anything else
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        recheck_seconds: when JWKS still fails, check again after this long; unset: the
            configured REMEDIATE_AUTH__REVERT_CHECK_AFTER_SECONDS
        healthy_for_seconds: how long JWKS must keep answering before enforcement is restored;
            unset: the configured REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS
        follow_up_key: the P1 follow-up in the incident store this revert closes
        verify_attempts: polls of each verification before it counts as failed
    """
    params = RevertAuthEnforceParams(
        **configured(
            namespace=namespace,
            deployment=deployment,
            variable=variable,
            recheck_seconds=recheck_seconds,
            healthy_for_seconds=healthy_for_seconds,
        ),
        restore_value=restore_value,
        bypass_value=bypass_value,
        dry_run=dry_run,
        follow_up_key=follow_up_key,
        verify_attempts=verify_attempts,
    )
    return tell_outcome(_revert(params))


def _revert(params: RevertAuthEnforceParams) -> Outcome:
    settings = Settings()
    w = settings.workloads
    snapshot = probe_jwks(
        params.namespace,
        params.deployment,
        settings.auth.jwks_url,
        w.admin_namespace,
        w.control_plane_deployment,
        params.variable,
    )
    diagnosis = diagnose_auth_revert(snapshot, params.restore_value, params.bypass_value)
    publish_diagnosis(diagnosis, "revert-auth-enforce-diagnosis")
    tell_diagnosis(diagnosis)
    if diagnosis.action is Action.NONE:
        outcome = Outcome.nothing_to_do(diagnosis)
    elif diagnosis.action is Action.ESCALATE:
        still = snapshot.auth_enforce == params.bypass_value
        outcome = (
            _still_bypassed(params, diagnosis, "JWKS still failed")
            if still
            else Outcome.escalated(diagnosis)
        )
    else:
        try:
            healthy = _healthy_long_enough(params, settings.auth.jwks_url)
        except (NotYetHealthy, VerifyFailed) as exc:
            outcome = _still_bypassed(params, diagnosis, str(exc))
        else:
            outcome = _restore(params, diagnosis)
            outcome = outcome.model_copy(update={"verification": (healthy, *outcome.verification)})
    if outcome.status in (OutcomeStatus.MITIGATED, OutcomeStatus.NOTHING_TO_DO):
        _close_p1(params, outcome)
    publish_outcome(outcome, "revert-auth-enforce-outcome")
    return outcome
