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

from datetime import datetime

from prefect import flow
from pydantic import BaseModel, Field

from tasks.diagnosis import Action
from tasks.mutations import patch_hpa_behavior
from tasks.outcome import Outcome, Verification
from tasks.publish import publish_changes, publish_diagnosis, publish_evidence, publish_outcome
from tasks.retries import NotYetHealthy
from tasks.settings import Settings
from tasks.snapshots import HpaThrashSnapshot
from tasks.verifies import VerifyFailed, verify_hpa_stable, verify_pods_not_crashing
from tasks.workload_diagnoses import (
    HPA_DAMPING_WINDOW_SECONDS,
    diagnose_hpa_thrash,
    recent_rescales,
)
from tasks.workload_probes import probe_hpa_decisions

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
        params.namespace, target, crashed
    )
    return Verification(
        check=VERIFY_CHECK,
        passed=True,
        detail=(
            f"scaleUp window {window} s, no rescale for {params.quiet_seconds:g} s; "
            f"{ready} pod(s) of {target} ready, none crash-looping"
        ),
    )


@flow(name="hpa-thrash", flow_run_name="hpa-thrash/{params.hpa}")
def remediate_hpa_thrash(params: HpaThrashParams) -> Outcome:
    """Runbook B: read the HPA's decisions and the worker task log, widen the scale-up
    stabilization window to 300 s, verify the HPA stops flapping."""
    snapshot = probe_hpa_decisions(params.namespace, params.hpa, params.worker_deployment)
    publish_evidence(
        "HPA decisions and worker task lines", _describe_hpa(snapshot), "hpa-thrash-evidence"
    )
    diagnosis = diagnose_hpa_thrash(snapshot)
    publish_diagnosis(diagnosis, "hpa-thrash-diagnosis")
    if not diagnosis.needs_action:
        outcome = (
            Outcome.nothing_to_do(diagnosis)
            if diagnosis.action is Action.NONE
            else Outcome.escalated(diagnosis)
        )
        publish_outcome(outcome, "hpa-thrash-outcome")
        return outcome
    change = patch_hpa_behavior(
        params.namespace,
        params.hpa,
        diagnosis.window_seconds or HPA_DAMPING_WINDOW_SECONDS,
        dry_run=params.dry_run,
        reason=diagnosis.summary,
    )
    if params.dry_run:
        outcome = Outcome.planned(diagnosis, change)
    else:
        target = (
            snapshot.hpa.target.name if snapshot.hpa and snapshot.hpa.target.name else params.hpa
        )
        try:
            verification = _verify(params, target, change.at, list(snapshot.crashing_pods))
            outcome = Outcome.mitigated(diagnosis, (change,), (verification,))
        except (NotYetHealthy, VerifyFailed) as exc:
            failed = Verification(check=VERIFY_CHECK, passed=False, detail=str(exc))
            outcome = Outcome.failed(
                diagnosis, f"the wider window did not stop it: {exc}", (change,), (failed,)
            )
    publish_changes(outcome, "hpa-thrash-changes")
    publish_outcome(outcome, "hpa-thrash-outcome")
    return outcome
