"""Runbook F — Stateful service failover.

    Postgres
    The compose stack uses a single Postgres pod backed by a PVC. K8s overlays should be
    migrated to a managed Postgres (Aurora / Cloud SQL / Azure Database for PostgreSQL) before
    going to prod.
    For dev/staging:
    kubectl -n alphaswarm delete pod -l app=postgres # restarts; data persists in PVC
    Redis Stack
    kubectl -n alphaswarm delete pod redis-master-0 # StatefulSet brings it back

Then prove it: a replacement pod is Ready, its claims are still Bound to the same volumes, and
the store answers the same data marker as before (when it could answer before). Where settings
mark the environment as production, or do not say (REMEDIATE_ENVIRONMENT unset: treated as
production), the Postgres pod is never deleted: the runbook wants a managed Postgres there, so
the run escalates with that message. Workers crashing while Redis is
down are a symptom: they recover with the broker and are never restarted here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from flows.approvals import ChangeApproval, approved_over_limits, ask_approval
from flows.runs import configured, named, tell_change, tell_diagnosis, tell_outcome
from tasks.changes.mutations import delete_pods
from tasks.diagnoses.platform import diagnose_stateful
from tasks.models.diagnosis import Action, Diagnosis
from tasks.models.outcome import Outcome, Verification
from tasks.models.scenario_call import ScenarioCall
from tasks.models.snapshots import StatefulSnapshot
from tasks.probes.platform import probe_stateful
from tasks.probes.stateful_data import (
    DataMarker,
    StoreAtRisk,
    probe_data_marker,
    store_at_risk,
    verify_data_survived,
)
from tasks.records.artifacts import (
    publish_changes,
    publish_diagnosis,
    publish_evidence,
    publish_outcome,
    publish_pods,
)
from tasks.retries import NotYetHealthy
from tasks.settings import Settings
from tasks.verifies import VerifyFailed, verify_stateful_ready

VERIFY_CHECK = "replacement pod ready, same volumes, same data"


class DataCheckInconclusive(Exception):
    """The pod is back on the same volumes, but the store refused the data check itself."""


class StatefulFailoverParams(BaseModel):
    """Which stores to look at and whether to act; defaults from settings. The environment is
    not a parameter: whether this is production comes from the deployment's settings only."""

    namespace: str = Field(default_factory=lambda: Settings().workloads.namespace)
    postgres_selector: str = Field(default_factory=lambda: Settings().workloads.postgres_selector)
    redis_pod: str = Field(default_factory=lambda: Settings().workloads.redis_pod)
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    verify_attempts: int = Field(default=120, ge=1, description="polls of each verify")
    verify_delay_seconds: float = Field(default=0.5, ge=0, description="pause between polls")
    approve_postgres_delete: bool = Field(
        default=False,
        description="pre-approve deleting the Postgres pod; otherwise the run pauses for a human",
    )
    approved_by: str = Field(default="", description="who pre-approved it")
    approval_timeout_seconds: int = Field(default=3600, ge=1)
    approval_poll_seconds: int = Field(default=10, ge=1)

    @classmethod
    def from_call(cls, call: ScenarioCall) -> StatefulFailoverParams:
        """F diagnoses Postgres against Redis itself (and refuses Postgres in production)."""
        return cls(
            **call.where(namespace="namespace"),
            dry_run=call.dry_run,
            approve_postgres_delete=call.approve_postgres_delete,
            approved_by=call.approved_by,
            approval_timeout_seconds=call.approval_timeout_seconds,
            **call.verify.overrides(),
        )


def _stateful_evidence(snapshot: StatefulSnapshot) -> list[str]:
    ns = snapshot.namespace
    lines = [f"$ kubectl -n {ns} get pods -l {snapshot.postgres_selector}"]
    lines += [
        f"{p.name} {p.ready} {p.status} restarts={p.restarts}" for p in snapshot.postgres_pods
    ]
    lines += [
        f"pvc {c.name}: {c.phase} volume={c.volume_name} {c.capacity or ''}".rstrip()
        for c in snapshot.postgres_pvcs
    ]
    lines.append(f"$ kubectl -n {ns} get pod {snapshot.redis_pod_name}")
    redis = snapshot.redis_pod
    lines.append(
        f"{redis.name} {redis.ready} {redis.status} restarts={redis.restarts}"
        if redis is not None
        else "(not found)"
    )
    sts = snapshot.redis_statefulset
    if sts is not None:
        lines.append(f"statefulset {sts.name}: {sts.ready_replicas}/{sts.replicas} ready")
    lines += [
        f"pvc {c.name}: {c.phase} volume={c.volume_name} {c.capacity or ''}".rstrip()
        for c in snapshot.redis_pvcs
    ]
    return lines


def _verify(at: StoreAtRisk, before: DataMarker, params: StatefulFailoverParams) -> Verification:
    attempts, delay = params.verify_attempts, params.verify_delay_seconds
    ready = verify_stateful_ready.with_options(retries=attempts, retry_delay_seconds=delay)(
        at.namespace,
        at.pod,
        at.selector,
        list(at.pod_uids),
        [c.name for c in at.claims],
    )
    data = verify_data_survived.with_options(retries=attempts, retry_delay_seconds=delay)(
        at, before
    )
    if data.marker.inconclusive:
        raise DataCheckInconclusive(f"{', '.join(ready)} ready; {data.describe(before)}")
    return Verification(
        check=VERIFY_CHECK,
        passed=True,
        detail=f"{', '.join(ready)} ready; {data.describe(before)}",
    )


def _not_acting(diagnosis: Diagnosis) -> Outcome:
    if diagnosis.action is Action.NONE:
        return Outcome.nothing_to_do(diagnosis)
    return Outcome.escalated(diagnosis)


def _approval(
    params: StatefulFailoverParams, at: StoreAtRisk, diagnosis: Diagnosis
) -> ChangeApproval | None:
    """Deleting the Postgres pod takes the only database down until it is back: a human
    approves it, in advance or on the paused run (seeing the plan and the guards' verdicts).
    None when no approval is needed (a dry run, Redis)."""
    if params.dry_run or at.store != "postgres":
        return None
    if params.approve_postgres_delete:
        who = params.approved_by or "pre-approved (approve_postgres_delete parameter)"
        return ChangeApproval(approved=True, approver=who, comment="approved before the run")
    plan = delete_pods(at.namespace, dry_run=True, selector=at.selector, reason=diagnosis.summary)
    return ask_approval(
        "Approve deleting the Postgres pod?",
        plan,
        list(diagnosis.evidence),
        timeout_seconds=params.approval_timeout_seconds,
        poll_seconds=params.approval_poll_seconds,
        key="approve-postgres-delete",
    )


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target: the namespace of the stores (which one is down is the diagnosis)."""
    return str(p.get("namespace") or Settings().workloads.namespace)


@flow(name="stateful-failover", flow_run_name=named("stateful-failover", _subject))
def remediate_stateful_failover(
    namespace: str = "",
    postgres_selector: str = "",
    redis_pod: str = "",
    dry_run: bool = True,
    verify_attempts: int = 120,
    verify_delay_seconds: float = 0.5,
    approve_postgres_delete: bool = False,
    approved_by: str = "",
    approval_timeout_seconds: int = 3600,
    approval_poll_seconds: int = 10,
) -> Outcome:
    """Runbook F: delete the Postgres pod (not in production) or redis-master-0, verify it is
    back with the same volumes and the same data.

    Args:
        namespace: where Postgres and Redis run; empty: the configured namespace (alphaswarm)
        postgres_selector: the label selector of the Postgres pod; empty: the configured one
            (app=postgres)
        redis_pod: the Redis StatefulSet's pod; empty: the configured one (redis-master-0)
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        verify_attempts: polls of each verification before it counts as failed
        verify_delay_seconds: pause between polls
        approve_postgres_delete: pre-approve deleting the Postgres pod (its only instance:
            clients fail until it is back); otherwise the run pauses for a human's approval
        approved_by: who pre-approved it (with approve_postgres_delete)
        approval_timeout_seconds: how long a paused run waits for that approval before it
            gives up and changes nothing
        approval_poll_seconds: how often the paused run looks for the answer
    """
    params = StatefulFailoverParams(
        **configured(namespace=namespace, postgres_selector=postgres_selector, redis_pod=redis_pod),
        dry_run=dry_run,
        verify_attempts=verify_attempts,
        verify_delay_seconds=verify_delay_seconds,
        approve_postgres_delete=approve_postgres_delete,
        approved_by=approved_by,
        approval_timeout_seconds=approval_timeout_seconds,
        approval_poll_seconds=approval_poll_seconds,
    )
    return tell_outcome(_remediate(params))


def _remediate(params: StatefulFailoverParams) -> Outcome:
    snapshot = probe_stateful(params.namespace, params.postgres_selector, params.redis_pod)
    publish_pods(
        (*snapshot.postgres_pods, *((snapshot.redis_pod,) if snapshot.redis_pod else ())),
        "stateful-failover-pods",
        "kubectl get pods: Postgres and Redis",
    )
    publish_evidence(
        "Postgres and Redis pods, StatefulSet and claims",
        _stateful_evidence(snapshot),
        "stateful-failover-evidence",
    )
    diagnosis = diagnose_stateful(snapshot, Settings().environment)
    publish_diagnosis(diagnosis, "stateful-failover-diagnosis")
    tell_diagnosis(diagnosis)
    if not diagnosis.needs_action:
        outcome = _not_acting(diagnosis)
        publish_outcome(outcome, "stateful-failover-outcome")
        return outcome
    at = store_at_risk(snapshot, diagnosis)
    before = probe_data_marker(at)
    publish_evidence(
        f"{at.store} data marker before the restart", [before.describe()], "stateful-failover-data"
    )
    approval = _approval(params, at, diagnosis)
    if approval is not None and not approval.approved:
        why = f"the Postgres pod delete was not approved: {approval.approver}: {approval.comment}"
        refused = Outcome.escalated(diagnosis, why)
        publish_outcome(refused, "stateful-failover-outcome")
        return refused
    change = approved_over_limits(
        delete_pods,
        at.namespace,
        dry_run=params.dry_run,
        evidence=diagnosis.evidence,
        selector=at.selector,
        pod=at.pod,
        reason=diagnosis.summary + (f" (approved by {approval.approver})" if approval else ""),
    )
    tell_change(change)
    if params.dry_run:
        outcome = Outcome.planned(diagnosis, change)
    else:
        try:
            outcome = Outcome.mitigated(diagnosis, (change,), (_verify(at, before, params),))
        except DataCheckInconclusive as exc:
            # Never "the data survived": a human checks what this run could not.
            unknown = Verification(check=VERIFY_CHECK, passed=False, detail=f"inconclusive: {exc}")
            outcome = Outcome.escalated(
                diagnosis,
                f"the {at.store} pod is back on the same volumes, but its data could not be "
                f"checked: {exc}",
                change,
            ).model_copy(update={"verification": (unknown,)})
        except (NotYetHealthy, VerifyFailed) as exc:
            failed = Verification(check=VERIFY_CHECK, passed=False, detail=str(exc))
            outcome = Outcome.failed(
                diagnosis,
                f"the {at.store} restart did not bring it back: {exc}",
                (change,),
                (failed,),
            )
    publish_changes(outcome, "stateful-failover-changes")
    publish_outcome(outcome, "stateful-failover-outcome")
    return outcome
