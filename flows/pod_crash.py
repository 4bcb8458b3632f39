"""Runbook A — single pod crashes.

    # Identify the crashing pod
    kubectl get pods -n alphaswarm -l app=alphaswarm-core | findstr CrashLoop
    # Inspect
    kubectl describe pod -n alphaswarm <pod-name>
    kubectl logs -n alphaswarm <pod-name> --previous
    # Rolling restart of the deployment (HPA + PDB keep the service up)
    kubectl rollout restart -n alphaswarm deployment/alphaswarm-core

Then prove it: the rollout completes and no pod of the Deployment crashes any more. Several
crashing pods are not this scenario (runbook B), and a restart that already failed to help, a
paused rollout or a violated PDB escalate with the evidence instead of restarting again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from flows.approvals import approved_over_limits
from flows.runs import configured, named, tell_change, tell_diagnosis, tell_outcome
from tasks.changes.mutations import restart_deployment
from tasks.connection import settings as current_settings
from tasks.diagnoses.workload import diagnose_pod_crash
from tasks.endings import no_action, settle
from tasks.models.diagnosis import Diagnosis
from tasks.models.outcome import Outcome, Verification
from tasks.models.scenario_call import ScenarioCall
from tasks.models.snapshots import PodCrashSnapshot
from tasks.probes.workload import probe_crashing_pods
from tasks.records.artifacts import publish_diagnosis, publish_evidence, publish_pods
from tasks.retries import VERIFY_DELAY_SECONDS
from tasks.verifies import verify_pods_not_crashing, verify_rollout_complete

VERIFY_CHECK = "rollout complete, pods stop crashing"


class PodCrashParams(BaseModel):
    """Where to look and whether to act; defaults are the runbook's names from settings."""

    namespace: str = Field(default_factory=lambda: current_settings().workloads.namespace)
    deployment: str = Field(default_factory=lambda: current_settings().workloads.core_deployment)
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    restarts_already_made: int = Field(
        default=0, ge=0, description="rollout restarts already made for this incident"
    )
    verify_attempts: int = Field(default=120, ge=1, description="polls of each verify")

    @classmethod
    def from_call(cls, call: ScenarioCall) -> PodCrashParams:
        return cls(
            **call.where(namespace="namespace", deployment="target"),
            dry_run=call.dry_run,
            restarts_already_made=call.restarts_already_made,
            **call.verify.overrides(delay=False),
        )


def crash_evidence(snapshot: PodCrashSnapshot) -> list[str]:
    lines = []
    for crash in snapshot.crashing:
        lines.append(f"$ kubectl describe pod -n {snapshot.namespace} {crash.pod.name}")
        if crash.description is not None:
            lines += [
                f"{s.name}: {s.state.state} {s.state.reason or ''}"
                for s in crash.description.containers
            ]
            lines += [f"event {e.reason}: {e.message}" for e in crash.description.events[-10:]]
        lines.append(f"$ kubectl logs -n {snapshot.namespace} {crash.pod.name} --previous")
        lines += (crash.previous_log or "(no previous log)").splitlines()[-30:]
    if snapshot.pdb is not None:
        pdb = snapshot.pdb
        lines.append(
            f"PDB {pdb.name}: {pdb.current_healthy} healthy, {pdb.desired_healthy} desired, "
            f"{pdb.disruptions_allowed} disruption(s) allowed"
        )
    return lines


def restart_and_prove(
    diagnosis: Diagnosis,
    snapshot: PodCrashSnapshot,
    *,
    dry_run: bool,
    flow: str,
    attempts: int,
    delay: float = VERIFY_DELAY_SECONDS,
) -> Outcome:
    """A's mitigation and its proof, shared with B's several-crashes road: a rolling restart of
    the Deployment, then the rollout completes and no pod crashed since the restart."""
    ns, name = snapshot.namespace, snapshot.deployment_name
    change = approved_over_limits(
        restart_deployment,
        ns,
        name,
        dry_run=dry_run,
        reason=diagnosis.summary,
        evidence=diagnosis.evidence,
    )
    tell_change(change)
    crashed = [c.pod.name for c in snapshot.crashing]

    def verify() -> tuple[Verification, ...]:
        # Pods first: a new pod that crashes answers at once, where the rollout would only
        # never complete.
        ready = verify_pods_not_crashing.with_options(retries=attempts, retry_delay_seconds=delay)(
            ns, name, crashed, change.since
        )
        rollout = verify_rollout_complete.with_options(retries=attempts, retry_delay_seconds=delay)(
            ns, name
        )
        detail = f"{rollout.message}; {ready} pod(s) ready, none crashed since the restart"
        return (Verification(check=VERIFY_CHECK, passed=True, detail=detail),)

    return settle(
        diagnosis,
        (change,),
        dry_run=dry_run,
        flow=flow,
        check=VERIFY_CHECK,
        verify=verify,
        did_not_fix="the restart did not stop the crashes",
    )


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target, the way triage names it: namespace/deployment."""
    w = current_settings().workloads
    return f"{p.get('namespace') or w.namespace}/{p.get('deployment') or w.core_deployment}"


@flow(name="pod-crash", flow_run_name=named("pod-crash", _subject))
def remediate_pod_crash(
    namespace: str = "",
    deployment: str = "",
    dry_run: bool = True,
    restarts_already_made: int = 0,
    verify_attempts: int = 120,
) -> Outcome:
    """Runbook A: find the crashing pod, inspect it, rolling-restart, verify it stops crashing.

    Args:
        namespace: where the Deployment runs; empty: the configured namespace (alphaswarm)
        deployment: the Deployment whose pod crash-loops; empty: the configured core
            Deployment (alphaswarm-core)
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        restarts_already_made: rollout restarts already made for this incident (a relapse
            included); after two, the next crash escalates instead of restarting again
        verify_attempts: polls of each verification before it counts as failed
    """
    params = PodCrashParams(
        **configured(namespace=namespace, deployment=deployment),
        dry_run=dry_run,
        restarts_already_made=restarts_already_made,
        verify_attempts=verify_attempts,
    )
    snapshot = probe_crashing_pods(
        params.namespace, params.deployment, restarts_already_made=params.restarts_already_made
    )
    publish_pods(snapshot.pods, "pod-crash-pods", f"kubectl get pods -l app={params.deployment}")
    publish_evidence(
        "Crashing pods: describe and previous logs", crash_evidence(snapshot), "pod-crash-evidence"
    )
    diagnosis = diagnose_pod_crash(snapshot)
    publish_diagnosis(diagnosis, "pod-crash-diagnosis")
    tell_diagnosis(diagnosis)
    if not diagnosis.needs_action:
        return tell_outcome(no_action(diagnosis, "pod-crash"))
    return tell_outcome(
        restart_and_prove(
            diagnosis,
            snapshot,
            dry_run=params.dry_run,
            flow="pod-crash",
            attempts=params.verify_attempts,
        )
    )
