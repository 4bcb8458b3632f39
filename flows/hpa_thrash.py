"""Runbook B — HPA thrashing.

    The HPA is scaling rapidly up + down, never stabilising.
    # Check the HPA's recent decisions
    kubectl describe hpa -n alphaswarm alphaswarm-core
    # Most common cause: a runaway query or backtest that spikes CPU then
    # crashes back. Check the audit log for recent task starts.
    kubectl logs -n alphaswarm deploy/alphaswarm-worker --tail=500 \\
        | findstr "started\\|finished\\|FAILED"
    # Mitigation: temporarily widen the HPA stabilizationWindow.
    kubectl patch hpa -n alphaswarm alphaswarm-core --type='json' -p='[
    {"op":"replace","path":"/spec/behavior/scaleUp/stabilizationWindowSeconds","value":300}
    ]'

Then prove it: the window is in place, the HPA has not rescaled for a quiet period, and the
pods the runaway task was killing stop crash-looping. A rollout restart is NOT this runbook's
fix (the runaway task kills the new pods too), and a window that is already 300 s escalates: a
second widening would not help, the runaway task must be found and stopped by a human.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from flows.approvals import approved_over_limits
from flows.pod_crash import crash_evidence, restart_and_prove
from flows.runs import configured, named, tell_change, tell_diagnosis, tell_outcome
from tasks.changes.mutations import patch_hpa_behavior
from tasks.diagnoses.workload import (
    HPA_DAMPING_WINDOW_SECONDS,
    diagnose_hpa_thrash,
    diagnose_several_crashes,
    is_thrashing,
    recent_rescales,
)
from tasks.endings import no_action, settle
from tasks.models.outcome import Outcome, Verification
from tasks.models.scenario_call import ScenarioCall
from tasks.models.snapshots import HpaThrashSnapshot
from tasks.probes.workload import probe_crashing_pods, probe_hpa_decisions
from tasks.records.artifacts import publish_diagnosis, publish_evidence
from tasks.settings import Settings
from tasks.verifies import verify_hpa_stable, verify_pods_not_crashing

VERIFY_CHECK = "scale-up window in place, no rescale for the quiet period, pods stop crashing"


class HpaThrashParams(BaseModel):
    """Which HPA, where its runaway task logs, and whether to act; defaults from settings."""

    namespace: str = Field(default_factory=lambda: Settings().workloads.namespace)
    hpa: str = Field(default_factory=lambda: Settings().workloads.hpa)
    worker_deployment: str = Field(
        default_factory=lambda: Settings().workloads.worker_deployment,
        description="whose log holds the started/finished/FAILED task lines",
    )
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    quiet_seconds: float = Field(
        default=60.0, gt=0, description="no rescale for this long after the patch counts as stable"
    )
    verify_attempts: int = Field(default=240, ge=1, description="polls of each verify")
    verify_delay_seconds: float = Field(default=0.5, ge=0, description="pause between polls")
    deployment: str = Field(
        default="",
        description="the Deployment whose pods crash-loop behind a calm HPA (several crashes); "
        "empty: the HPA's target",
    )
    restarts_already_made: int = Field(
        default=0, ge=0, description="rollout restarts already made for this incident"
    )

    @classmethod
    def from_call(cls, call: ScenarioCall) -> HpaThrashParams:
        """Thrash: the HPA triage saw flapping. Several crashes: the crashing Deployment (and
        the HPA in front of it, when there is one)."""
        if call.decision.several_crashing:
            where = call.where(namespace="namespace", hpa="hpa", deployment="target")
        else:
            where = call.where(namespace="namespace", hpa="target")
        return cls(
            **where,
            dry_run=call.dry_run,
            restarts_already_made=call.restarts_already_made,
            **call.verify.overrides(quiet=True),
        )


def _describe_hpa(snapshot: HpaThrashSnapshot) -> list[str]:
    """`kubectl describe hpa` and the worker log's task lines, as the operator would read them."""
    ns = snapshot.namespace
    lines = [f"$ kubectl describe hpa -n {ns} {snapshot.hpa_name}"]
    hpa = snapshot.hpa
    if hpa is None:
        lines.append("(not found)")
    else:
        up = hpa.behavior.scale_up if hpa.behavior is not None else None
        window = up.stabilization_window_seconds if up is not None else None
        lines += [
            f"target: {hpa.target.kind}/{hpa.target.name}",
            f"replicas: {hpa.current_replicas} current / {hpa.desired_replicas} desired "
            f"(min {hpa.min_replicas}, max {hpa.max_replicas})",
            f"scaleUp.stabilizationWindowSeconds: {window if window is not None else 'unset'}",
        ]
        lines += [f"condition {c.type}={c.status} {c.reason}: {c.message}" for c in hpa.conditions]
        lines += [
            f"SuccessfulRescale x{r.count} (last {r.last_timestamp:%H:%M:%S}): {r.message}"
            for r in recent_rescales(hpa.rescales, snapshot.observed_at)
            if r.last_timestamp is not None
        ]
    if snapshot.crashing_pods:
        lines.append(f"crash-looping pods: {', '.join(snapshot.crashing_pods)}")
    lines.append(
        f'$ kubectl logs -n {ns} deploy/<worker> --tail=500 | grep "started\\|finished\\|FAILED"'
    )
    lines += list(snapshot.worker_task_lines[-30:]) or ["(no task lines)"]
    return lines


def _verify(
    params: HpaThrashParams, target: str, since: datetime, crashed: list[str]
) -> Verification:
    attempts, delay = params.verify_attempts, params.verify_delay_seconds
    window = verify_hpa_stable.with_options(retries=attempts, retry_delay_seconds=delay)(
        params.namespace, params.hpa, HPA_DAMPING_WINDOW_SECONDS, since, params.quiet_seconds
    )
    ready = verify_pods_not_crashing.with_options(retries=attempts, retry_delay_seconds=delay)(
        params.namespace, target, crashed, since
    )
    return Verification(
        check=VERIFY_CHECK,
        passed=True,
        detail=(
            f"scaleUp window {window} s, no rescale for {params.quiet_seconds:g} s; "
            f"{ready} pod(s) of {target} ready, none crashed since"
        ),
    )


def _several_crashes(
    params: HpaThrashParams, snapshot: HpaThrashSnapshot, deployment: str
) -> Outcome:
    """Several pods crash-loop and the HPA is calm: the worker log (above) for a runaway task,
    then runbook A's inspection of each crashing pod and A's rolling restart, never the HPA
    patch (a calm HPA's window is not the fix)."""
    crashes = probe_crashing_pods(
        params.namespace, deployment, restarts_already_made=params.restarts_already_made
    )
    publish_evidence(
        "Crashing pods: describe and previous logs", crash_evidence(crashes), "hpa-thrash-pods"
    )
    diagnosis = diagnose_several_crashes(snapshot, crashes)
    publish_diagnosis(diagnosis, "hpa-thrash-diagnosis")
    tell_diagnosis(diagnosis)
    if not diagnosis.needs_action:
        return no_action(diagnosis, "hpa-thrash")
    return restart_and_prove(
        diagnosis,
        crashes,
        dry_run=params.dry_run,
        flow="hpa-thrash",
        attempts=params.verify_attempts,
        delay=params.verify_delay_seconds,
    )


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target: the HPA, or the Deployment on the several-crashes road."""
    w = Settings().workloads
    return f"{p.get('namespace') or w.namespace}/{p.get('deployment') or p.get('hpa') or w.hpa}"


@flow(name="hpa-thrash", flow_run_name=named("hpa-thrash", _subject))
def remediate_hpa_thrash(
    namespace: str = "",
    hpa: str = "",
    worker_deployment: str = "",
    dry_run: bool = True,
    quiet_seconds: float = 60.0,
    verify_attempts: int = 240,
    verify_delay_seconds: float = 0.5,
    deployment: str = "",
    restarts_already_made: int = 0,
) -> Outcome:
    """Runbook B: read the HPA's decisions and the worker task log, widen the scale-up
    stabilization window to 300 s, verify the HPA stops flapping. Several crashing pods behind
    a calm HPA take the runbook's other road (`_several_crashes`).

    Args:
        namespace: where the HPA runs; empty: the configured namespace (alphaswarm)
        hpa: the HorizontalPodAutoscaler that flaps; empty: the configured HPA (alphaswarm-core)
        worker_deployment: whose log holds the started/finished/FAILED task lines; empty: the
            configured worker Deployment (alphaswarm-worker)
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        quiet_seconds: how long without a rescale after the patch counts as stable
        verify_attempts: polls of each verification before it counts as failed
        verify_delay_seconds: pause between polls
        deployment: the Deployment whose pods crash-loop behind a calm HPA (several crashes);
            empty: the HPA's target
        restarts_already_made: rollout restarts already made for this incident (several
            crashes: the runbook restarts once)
    """
    params = HpaThrashParams(
        **configured(namespace=namespace, hpa=hpa, worker_deployment=worker_deployment),
        dry_run=dry_run,
        quiet_seconds=quiet_seconds,
        verify_attempts=verify_attempts,
        verify_delay_seconds=verify_delay_seconds,
        deployment=deployment,
        restarts_already_made=restarts_already_made,
    )
    return tell_outcome(_remediate(params))


def _remediate(params: HpaThrashParams) -> Outcome:
    snapshot = probe_hpa_decisions(params.namespace, params.hpa, params.worker_deployment)
    publish_evidence(
        "HPA decisions and worker task lines", _describe_hpa(snapshot), "hpa-thrash-evidence"
    )
    hpa = snapshot.hpa
    thrashing = hpa is not None and is_thrashing(hpa.rescales, snapshot.observed_at)
    target = params.deployment or (hpa.target.name if hpa and hpa.target.name else None)
    if not thrashing and target and (params.deployment or len(snapshot.crashing_pods) > 1):
        return _several_crashes(params, snapshot, target)
    diagnosis = diagnose_hpa_thrash(snapshot, timedelta(seconds=params.quiet_seconds))
    publish_diagnosis(diagnosis, "hpa-thrash-diagnosis")
    tell_diagnosis(diagnosis)
    if not diagnosis.needs_action:
        return no_action(diagnosis, "hpa-thrash")
    change = approved_over_limits(
        patch_hpa_behavior,
        params.namespace,
        params.hpa,
        diagnosis.window_seconds or HPA_DAMPING_WINDOW_SECONDS,
        dry_run=params.dry_run,
        reason=diagnosis.summary,
        evidence=diagnosis.evidence,
    )
    tell_change(change)
    crashed = list(snapshot.crashing_pods)
    return settle(
        diagnosis,
        (change,),
        dry_run=params.dry_run,
        flow="hpa-thrash",
        check=VERIFY_CHECK,
        verify=lambda: (_verify(params, target or params.hpa, change.since, crashed),),
        did_not_fix="the wider window did not stop it",
    )
