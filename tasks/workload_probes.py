"""Probes for the runbook's workload branch (A, B, C): each returns one typed snapshot.

Each probe makes the reads its runbook section lists, in that order, and nothing else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tasks.adapters.workers import ActiveTasks, WorkersOnline
from tasks.connection import cluster, workers
from tasks.retries import probe_task
from tasks.settings import DEFAULT_QUEUE_DEPTH_ALARM
from tasks.snapshots import CrashingPod, HpaThrashSnapshot, PodCrashSnapshot, QueueSnapshot
from tasks.workload_diagnoses import is_crash_looping

PREVIOUS_LOG_TAIL = 50
WORKER_LOG_TAIL = 500
# The runbook's `findstr "started\|finished\|FAILED"`.
WORKER_TASK_LINE = re.compile(r"started|finished|FAILED")
CELERY_INSPECT_ACTIVE = ("celery", "-A", "alphaswarm.tasks.celery_app", "inspect", "active")


def _selector_of(pods_selector: str | None, deployment_selector: str) -> str:
    return pods_selector or deployment_selector


@probe_task("probe-crashing-pods")
def probe_crashing_pods(
    namespace: str, deployment: str, *, restarts_already_made: int = 0
) -> PodCrashSnapshot:
    """Runbook A: `get pods -l app=X | findstr CrashLoop`, `describe pod`, `logs --previous`,
    and the PDB that must allow the rolling restart."""
    c = cluster()
    found = c.deployment(namespace, deployment)
    selector = found.selector.render() if found is not None else ""
    pods = c.pods(namespace, _selector_of(selector, f"app={deployment}"))
    crashing = tuple(
        CrashingPod(
            pod=pod,
            description=c.describe_pod(namespace, pod.name),
            previous_log=c.pod_logs(namespace, pod.name, previous=True, tail=PREVIOUS_LOG_TAIL),
        )
        for pod in pods
        if is_crash_looping(pod)
    )
    pdb = next(
        (
            b
            for b in c.pod_disruption_budgets(namespace)
            if b.selector.match_labels
            and found is not None
            and all(
                found.selector.match_labels.get(k) == v for k, v in b.selector.match_labels.items()
            )
        ),
        None,
    )
    return PodCrashSnapshot(
        observed_at=datetime.now(UTC),
        namespace=namespace,
        deployment_name=deployment,
        deployment=found,
        pods=pods,
        crashing=crashing,
        pdb=pdb,
        restarts_already_made=restarts_already_made,
    )


@probe_task("probe-hpa-decisions")
def probe_hpa_decisions(namespace: str, hpa: str, worker_deployment: str) -> HpaThrashSnapshot:
    """Runbook B: `describe hpa` (its rescale decisions) and the worker log's task lines."""
    c = cluster()
    found = c.hpa(namespace, hpa)
    logs = c.deployment_logs(namespace, worker_deployment, tail=WORKER_LOG_TAIL)
    lines = tuple(
        line
        for line in ((logs.text or "") if logs is not None else "").splitlines()
        if WORKER_TASK_LINE.search(line)
    )
    target = found.target.name if found is not None and found.target.name else hpa
    crashing = tuple(p.name for p in c.pods(namespace, f"app={target}") if is_crash_looping(p))
    return HpaThrashSnapshot(
        observed_at=datetime.now(UTC),
        namespace=namespace,
        hpa_name=hpa,
        hpa=found,
        worker_task_lines=lines,
        crashing_pods=crashing,
    )


def count_active_tasks(inspect_output: str) -> int | None:
    """Tasks listed by `celery inspect active` (its `* {...}` lines); None when no node replied."""
    if "OK" not in inspect_output:
        return None
    return sum(1 for line in inspect_output.splitlines() if line.strip().startswith("* {"))


@probe_task("probe-queue-depth")
def probe_queue_depth(queue: str) -> int:
    """Runbook C's alarm measure: messages waiting in `queue`, read from the broker."""
    return workers().queue_depth(queue)


@probe_task("probe-celery-workers")
def probe_celery_workers(timeout: float = 1.0) -> tuple[ActiveTasks, WorkersOnline]:
    """`celery inspect active` and `celery inspect ping` through the broker, from here."""
    adapter = workers()
    return adapter.active_tasks(timeout=timeout), adapter.workers_online(timeout=timeout)


@probe_task("probe-worker-activity")
def probe_worker_activity(
    namespace: str,
    deployment: str,
    queue: str,
    depth: int | None,
    *,
    alarm: int = DEFAULT_QUEUE_DEPTH_ALARM,
    broker_error: str = "",
) -> QueueSnapshot:
    """Runbook C: `kubectl exec deploy/alphaswarm-worker -- celery ... inspect active` and the
    worker Deployment. The queue depth comes from the broker (`probe_queue_depth`) and is
    passed in, with the broker's failure when it could not be read, so this probe stays a
    cluster read."""
    c = cluster()
    found = c.deployment(namespace, deployment)
    inspect = c.exec_in_deployment(namespace, deployment, CELERY_INSPECT_ACTIVE)
    output = inspect.stdout if inspect.ok else inspect.stderr
    return QueueSnapshot(
        observed_at=datetime.now(UTC),
        namespace=namespace,
        deployment_name=deployment,
        queue=queue,
        depth=depth,
        active_tasks=count_active_tasks(inspect.stdout) if inspect.ok else None,
        workers=found,
        inspect_output=output[-2000:],
        alarm=alarm,
        broker_error=broker_error,
    )
