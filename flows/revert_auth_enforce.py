"""The revert of runbook D's hard-rule bypass: put ALPHASWARM_AUTH_ENFORCE back once JWKS answers.

    # Post-incident: if a hard rule was bypassed (e.g. ALPHASWARM_AUTH_ENFORCE flipped to
    # permissive), schedule the revert as a P1 task.

`remediate_jwks_outage` schedules this flow as a future run of the `revert-auth-enforce`
deployment when it applies the permissive flip. The run sits in Prefect as SCHEDULED (and shows
as Late in the UI if nothing picks it up): a process serving that deployment executes it. When
it runs and JWKS still fails, it leaves permissive in place and schedules its own next check,
so the revert keeps coming back until it can be done. It restores exactly the value the bypass
replaced, through the gate, and refuses to overwrite a value someone set by hand since.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.deployments.runner import RunnerDeployment
from pydantic import BaseModel, ConfigDict, Field

from tasks.diagnosis import Action
from tasks.mutations import set_deployment_env
from tasks.outcome import FollowUp, Outcome, Priority, Verification
from tasks.platform_diagnoses import PERMISSIVE, diagnose_auth_revert
from tasks.platform_probes import probe_jwks
from tasks.publish import publish_diagnosis, publish_outcome
from tasks.retries import NotYetHealthy
from tasks.settings import Settings
from tasks.verifies import VerifyFailed, verify_rollout_complete

FLOW_NAME = "revert-auth-enforce"
DEPLOYMENT_NAME = "revert-auth-enforce"
RECHECK_SECONDS = 900


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
        default=RECHECK_SECONDS, ge=1, description="when JWKS still fails, check again after"
    )
    verify_attempts: int = Field(default=120, ge=1)

    def as_follow_up_parameters(self) -> dict[str, str | int | bool | None]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "variable": self.variable,
            "restore_value": self.restore_value,
            "bypass_value": self.bypass_value,
            "dry_run": self.dry_run,
            "recheck_seconds": self.recheck_seconds,
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
        tags=["hard-rule-revert", "P1"],
        description="Restore ALPHASWARM_AUTH_ENFORCE after runbook D's permissive bypass",
    )
    deployment_id = deployment.apply()
    when = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    run: FlowRun = run_deployment(  # type: ignore[assignment]
        f"{FLOW_NAME}/{DEPLOYMENT_NAME}",
        parameters={"params": params.model_dump(mode="json")},
        scheduled_time=when,
        timeout=0,
        as_subflow=False,
        tags=["hard-rule-revert", "P1"],
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
        priority=Priority.P1,
        title=f"revert {params.variable} on {params.namespace}/{params.deployment} to {restored}",
        flow=FLOW_NAME,
        parameters=params.as_follow_up_parameters(),
        condition="the JWKS probe is healthy from a core pod (and from here)",
        scheduled_flow_run_id=scheduled.flow_run_id if scheduled is not None else None,
        scheduled_for=scheduled.scheduled_for if scheduled is not None else None,
        note=note,
    )


@flow(name=FLOW_NAME, flow_run_name="revert-auth-enforce/{params.deployment}")
def revert_auth_enforce(params: RevertAuthEnforceParams) -> Outcome:
    """Restore the auth variable once JWKS answers; otherwise keep permissive and come back."""
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
    if diagnosis.action is Action.NONE:
        outcome = Outcome.nothing_to_do(diagnosis)
    elif diagnosis.action is Action.ESCALATE:
        follow_ups: tuple[FollowUp, ...] = ()
        if snapshot.auth_enforce == params.bypass_value and not params.dry_run:
            # Still bypassed because JWKS still fails: the P1 stays open and comes back.
            again = schedule_revert(params, params.recheck_seconds)
            follow_ups = (revert_follow_up(params, again, "rescheduled: JWKS still failed"),)
        outcome = Outcome.escalated(diagnosis).model_copy(update={"follow_ups": follow_ups})
    else:
        change = set_deployment_env(
            params.namespace,
            params.deployment,
            params.variable,
            params.restore_value,
            dry_run=params.dry_run,
            reason=diagnosis.summary,
        )
        if params.dry_run:
            outcome = Outcome.planned(diagnosis, change)
        else:
            try:
                rollout = verify_rollout_complete.with_options(retries=params.verify_attempts)(
                    params.namespace, params.deployment
                )
                checked = Verification(
                    check="rollout complete with the restored value",
                    passed=True,
                    detail=rollout.message,
                )
                outcome = Outcome.mitigated(diagnosis, (change,), (checked,))
            except (NotYetHealthy, VerifyFailed) as exc:
                failed = Verification(
                    check="rollout complete with the restored value", passed=False, detail=str(exc)
                )
                outcome = Outcome.failed(diagnosis, str(exc), (change,), (failed,))
    publish_outcome(outcome, "revert-auth-enforce-outcome")
    return outcome
