"""Runbook C — Celery queue depth alarm.

    # Drain the queue from the worker side
    kubectl exec -n alphaswarm deploy/alphaswarm-worker -- \\
        celery -A alphaswarm.tasks.celery_app inspect active
    # Scale workers up
    kubectl scale -n alphaswarm deployment/alphaswarm-worker --replicas=8
    # Or via the control plane (lands an audit row)
    curl -X PATCH https://manage.alphaswarm.enterprise.com/manage/deployments/alphaswarm-worker/scale?replicas=8

The queue depth comes from the broker (the alarm's own measure), what the workers are doing from
Celery itself and from `inspect active` exec'd in a worker pod. The scale goes through the
control plane first, so it lands an audit row; its 429s and 5xx are retried by the mutation
task. A control plane that refuses for good (a bad token) or stays unreachable after those
retries is answered by the Kubernetes scale subresource instead. Both verbs go through the gate,
which reads the replicas before writing, so whichever lands, the scale takes effect once.

Then prove it: 8 workers answer a ping, and the queue drains to empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from flows.approvals import approved_over_limits
from flows.runs import configured, named, tell_change, tell_diagnosis, tell_outcome
from tasks.adapters.errors import AdapterError
from tasks.adapters.workers import ActiveTasks, WorkersOnline
from tasks.changes.gate import GuardRefused
from tasks.changes.models import ChangeRecord
from tasks.changes.mutations import scale_deployment, scale_via_control_plane
from tasks.diagnoses.workload import WORKER_REPLICAS_TARGET, diagnose_queue_backlog
from tasks.models.diagnosis import Action
from tasks.models.outcome import Outcome, Verification
from tasks.models.scenario_call import ScenarioCall
from tasks.models.snapshots import QueueSnapshot
from tasks.probes.workload import (
    celery_inspect_active,
    how_queue_is_read,
    probe_celery_workers,
    probe_queue_depth,
    probe_worker_activity,
)
from tasks.records.artifacts import (
    publish_changes,
    publish_diagnosis,
    publish_evidence,
    publish_outcome,
)
from tasks.retries import NotYetHealthy
from tasks.settings import Settings
from tasks.verifies import (
    VerifyFailed,
    verify_queue_draining,
    verify_rollout_complete,
    verify_workers_online,
)

VERIFY_CHECK = "the workers are online and the queue drains to empty"


class QueueBacklogParams(BaseModel):
    """Which workers, which queue, and whether to act; defaults from settings."""

    namespace: str = Field(default_factory=lambda: Settings().workloads.namespace)
    deployment: str = Field(default_factory=lambda: Settings().workloads.worker_deployment)
    queue: str = Field(default_factory=lambda: Settings().celery.queues[0])
    alarm: int = Field(
        default_factory=lambda: Settings().celery.queue_depth_alarm,
        ge=1,
        description="messages waiting that make the queue deep enough to act on",
    )
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    verify_attempts: int = Field(default=240, ge=1, description="polls of each verify")
    verify_delay_seconds: float = Field(default=2.5, ge=0, description="pause between polls")

    @classmethod
    def from_call(cls, call: ScenarioCall) -> QueueBacklogParams:
        """C scales the worker Deployment triage found behind the deep queue."""
        return cls(
            **call.where(namespace="namespace", deployment="target", queue="queue"),
            dry_run=call.dry_run,
            **call.verify.overrides(),
        )


class CeleryView(BaseModel):
    """What Celery said through the broker, or why it could not say it."""

    depth: int | None = None
    active: ActiveTasks | None = None
    online: WorkersOnline | None = None
    error: str = ""


def _ask_celery(queue: str) -> CeleryView:
    """The queue depth and Celery's view of the workers; a broker that stays unreachable after
    the probes' retries is evidence (the diagnosis escalates), not a crash. Without a broker
    the depth comes from `redis-cli llen` in the Redis pod and the workers from their pods."""
    try:
        depth = probe_queue_depth(queue)
    except AdapterError as exc:
        return CeleryView(error=f"{how_queue_is_read()}: {exc}")
    if not Settings().celery.configured:
        return CeleryView(depth=depth, error=f"depth read with {how_queue_is_read()}")
    try:
        active, online = probe_celery_workers()
    except AdapterError as exc:
        return CeleryView(depth=depth, error=f"inspect through the broker failed: {exc}")
    return CeleryView(depth=depth, active=active, online=online)


def _describe(snapshot: QueueSnapshot, celery: CeleryView) -> list[str]:
    """The broker's depth, Celery's own answers and the in-pod `inspect active`, as read."""
    ns, name = snapshot.namespace, snapshot.deployment_name
    lines = [f"$ redis-cli llen {snapshot.queue}   # the alarm's measure, priority lanes included"]
    lines.append(
        f"{snapshot.depth} (alarm at {snapshot.alarm})"
        if snapshot.depth is not None
        else f"(no answer: {celery.error})"
    )
    if celery.active is not None:
        lines.append(f"celery inspect active (through the broker): {celery.active.total} task(s)")
        lines += [
            f"  {w.hostname}: " + (", ".join(f"{t.name}({t.args})" for t in w.tasks) or "idle")
            for w in celery.active.workers
        ]
    if celery.online is not None:
        lines.append(f"celery inspect ping: {celery.online.count} worker(s) answer")
    elif celery.error and snapshot.depth is not None:
        lines.append(celery.error)
    lines.append(f"$ kubectl exec -n {ns} deploy/{name} -- {celery_inspect_active().shown()}")
    lines += snapshot.inspect_output.strip().splitlines()[-20:] or ["(no output)"]
    w = snapshot.workers
    lines.append(
        f"deployment/{name}: {w.replicas} replica(s), {w.ready_replicas} ready"
        if w is not None
        else f"deployment/{name}: not found"
    )
    return lines


def _scale(
    params: QueueBacklogParams, replicas: int, reason: str, evidence: Sequence[str]
) -> ChangeRecord:
    """The control plane first (an audit row), the scale subresource when it will not do it.

    Exactly once either way: if the control plane's write landed but its answer was lost, the
    fallback's gate reads 8 replicas already and sends nothing. A guard's refusal is not the
    control plane failing: the fallback would meet the same guards, so it stands."""
    ns, name, dry_run = params.namespace, params.deployment, params.dry_run
    try:
        return approved_over_limits(
            scale_via_control_plane,
            ns,
            name,
            replicas,
            dry_run=dry_run,
            reason=reason,
            evidence=evidence,
        )
    except GuardRefused:
        raise
    except AdapterError as exc:
        return approved_over_limits(
            scale_deployment,
            ns,
            name,
            replicas,
            dry_run=dry_run,
            reason=f"{reason} (Kubernetes fallback: the control plane failed: {exc})",
            evidence=evidence,
        )


def _verify(params: QueueBacklogParams, replicas: int, baseline: int) -> Verification:
    """8 workers answer a ping through the broker (without one: the rollout to 8 ready pods
    completes), and the queue drains to empty."""
    attempts, delay = params.verify_attempts, params.verify_delay_seconds
    if Settings().celery.configured:
        online = verify_workers_online.with_options(retries=attempts, retry_delay_seconds=delay)(
            params.namespace, params.deployment, replicas
        )
        workers = f"{online} worker(s) online"
    else:
        rollout = verify_rollout_complete.with_options(retries=attempts, retry_delay_seconds=delay)(
            params.namespace, params.deployment
        )
        workers = f"{rollout.message} (no broker to ping the workers through)"
    depth = verify_queue_draining.with_options(retries=attempts, retry_delay_seconds=delay)(
        params.queue, baseline
    )
    return Verification(
        check=VERIFY_CHECK,
        passed=True,
        detail=f"{workers}; queue {params.queue} at {depth} (was {baseline})",
    )


def _subject(p: Mapping[str, Any]) -> str:
    """The run's target: the worker Deployment that drains the queue."""
    w = Settings().workloads
    return f"{p.get('namespace') or w.namespace}/{p.get('deployment') or w.worker_deployment}"


@flow(name="queue-backlog", flow_run_name=named("queue-backlog", _subject))
def remediate_queue_backlog(
    namespace: str = "",
    deployment: str = "",
    queue: str = "",
    alarm: int | None = None,
    dry_run: bool = True,
    verify_attempts: int = 240,
    verify_delay_seconds: float = 2.5,
) -> Outcome:
    """Runbook C: inspect the queue and the workers, scale the workers to 8 (control plane
    first, audited), verify they are online and the queue drains.

    Args:
        namespace: where the workers run; empty: the configured namespace (alphaswarm)
        deployment: the Celery worker Deployment to scale; empty: the configured worker
            Deployment (alphaswarm-worker)
        queue: the Celery queue that alarmed; empty: the first configured queue
        alarm: messages waiting that make the queue deep enough to act on; unset: the
            configured alarm (REMEDIATE_CELERY__QUEUE_DEPTH_ALARM)
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        verify_attempts: polls of each verification before it counts as failed
        verify_delay_seconds: pause between polls
    """
    params = QueueBacklogParams(
        **configured(namespace=namespace, deployment=deployment, queue=queue, alarm=alarm),
        dry_run=dry_run,
        verify_attempts=verify_attempts,
        verify_delay_seconds=verify_delay_seconds,
    )
    return tell_outcome(_remediate(params))


def _remediate(params: QueueBacklogParams) -> Outcome:
    celery = _ask_celery(params.queue)
    snapshot = probe_worker_activity(
        params.namespace,
        params.deployment,
        params.queue,
        celery.depth,
        alarm=params.alarm,
        broker_error=celery.error if celery.depth is None else "",
    )
    publish_evidence(
        "Queue depth and worker activity", _describe(snapshot, celery), "queue-backlog-evidence"
    )
    diagnosis = diagnose_queue_backlog(snapshot)
    publish_diagnosis(diagnosis, "queue-backlog-diagnosis")
    tell_diagnosis(diagnosis)
    if not diagnosis.needs_action:
        outcome = (
            Outcome.nothing_to_do(diagnosis)
            if diagnosis.action is Action.NONE
            else Outcome.escalated(diagnosis)
        )
        publish_outcome(outcome, "queue-backlog-outcome")
        return outcome
    replicas = diagnosis.replicas or WORKER_REPLICAS_TARGET
    change = _scale(params, replicas, diagnosis.summary, diagnosis.evidence)
    tell_change(change)
    if params.dry_run:
        outcome = Outcome.planned(diagnosis, change)
    else:
        try:
            verification = _verify(params, replicas, snapshot.depth or 0)
            outcome = Outcome.mitigated(diagnosis, (change,), (verification,))
        except (NotYetHealthy, VerifyFailed, AdapterError) as exc:
            failed = Verification(check=VERIFY_CHECK, passed=False, detail=str(exc))
            outcome = Outcome.failed(
                diagnosis,
                f"{replicas} workers did not drain the queue: {exc}",
                (change,),
                (failed,),
            )
    publish_changes(outcome, "queue-backlog-changes")
    publish_outcome(outcome, "queue-backlog-outcome")
    return outcome
