"""Probes for the runbook's workload branch (A, B, C): each returns one typed snapshot.

Each probe makes the reads its runbook section lists, in that order, and nothing else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Protocol

from pydantic import SecretStr

from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import ExecCommand, celery_inspect, redis_cli
from tasks.adapters.workers import (
    PRIORITY_SEPARATOR,
    PRIORITY_STEPS,
    ActiveTasks,
    WorkersOnline,
)
from tasks.connection import cluster, workers
from tasks.diagnoses.crashes import is_crash_looping
from tasks.models.snapshots import CrashingPod, HpaThrashSnapshot, PodCrashSnapshot, QueueSnapshot
from tasks.retries import probe_task
from tasks.settings import DEFAULT_QUEUE_DEPTH_ALARM, Settings

PREVIOUS_LOG_TAIL = 50
WORKER_LOG_TAIL = 500
# The runbook's `findstr "started\|finished\|FAILED"`.
WORKER_TASK_LINE = re.compile(r"started|finished|FAILED")


class QueueDepth(Protocol):
    """The one call a queue-depth reader makes (the workers adapter, or RedisInPod)."""

    def queue_depth(self, queue: str) -> int: ...


def celery_inspect_active() -> ExecCommand:
    """The runbook's `celery -A alphaswarm.tasks.celery_app inspect active`, with the configured
    app (REMEDIATE_CELERY__APP)."""
    return celery_inspect(Settings().celery.app, "active")


def queue_lanes(queue: str) -> tuple[str, ...]:
    """The Redis lists a Celery queue is kept in: its name, and one per priority step (kombu's
    Redis transport: `queue`, then `queue\\x06\\x163`, `...6`, `...9` by default)."""
    return (queue, *(f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS))


def _pod_crash_snapshot(
    namespace: str, deployment: str, restarts_already_made: int = 0, *, detail: bool = True
) -> PodCrashSnapshot:
    """Runbook A's look at one Deployment; without `detail`, only the Deployment and its pods
    (which of them crash), not each crashing pod's description and previous log nor the PDB."""
    c = cluster()
    now = datetime.now(UTC)
    found = c.deployment(namespace, deployment)
    selector = found.selector.render() if found is not None else ""
    pods = c.pods(namespace, selector) if selector else ()
    crashing = tuple(
        CrashingPod(
            pod=pod,
            description=c.describe_pod(namespace, pod.name),
            previous_log=c.pod_logs(namespace, pod.name, previous=True, tail=PREVIOUS_LOG_TAIL),
        )
        for pod in pods
        if detail and is_crash_looping(pod, now)
    )
    pdb = next(
        (
            b
            for b in (c.pod_disruption_budgets(namespace) if detail else ())
            if b.selector.match_labels
            and found is not None
            and all(
                found.selector.match_labels.get(k) == v for k, v in b.selector.match_labels.items()
            )
        ),
        None,
    )
    return PodCrashSnapshot(
        observed_at=now,
        namespace=namespace,
        deployment_name=deployment,
        deployment=found,
        pods=pods,
        crashing=crashing,
        pdb=pdb,
        restarts_already_made=restarts_already_made,
    )


@probe_task("probe-crashing-pods")
def probe_crashing_pods(
    namespace: str, deployment: str, *, restarts_already_made: int = 0
) -> PodCrashSnapshot:
    """Runbook A: `get pods -l <the Deployment's selector> | findstr CrashLoop` (judged over a
    window: a crash-looping pod may be Running between crashes), `describe pod`,
    `logs --previous`, and the PDB that must allow the rolling restart."""
    return _pod_crash_snapshot(namespace, deployment, restarts_already_made)


@probe_task("probe-crash-scan")
def probe_crash_scan(
    namespaces: list[str],
    named_pods: list[tuple[str, str]],
    named_deployments: list[tuple[str, str]],
) -> tuple[PodCrashSnapshot, ...]:
    """The workload branch's view of every watched namespace: one pod list per namespace, and
    for each Deployment that owns a crash-looping pod (or that an alert names, directly or
    through one of its pods) the Deployment and its pods. A pod's Deployment is found through
    its ownerReferences, never from its name or an `app` label. Which pods crash is all the
    decision reads: each crashing pod's description and previous log are read by the
    scenario's own probe (`probe_crashing_pods`), for the Deployment it acts on only; reading
    them here for every crashing Deployment made each triage run, and each of its hold's
    re-checks, cost requests in proportion to every crash in the cluster."""
    c = cluster()
    now = datetime.now(UTC)
    wanted: dict[tuple[str, str], None] = dict.fromkeys(named_deployments)
    pods_named = set(named_pods)
    for namespace in namespaces:
        for pod in c.pods(namespace):
            if not (is_crash_looping(pod, now) or (namespace, pod.name) in pods_named):
                continue
            owner = c.workload_of(pod)
            if owner is not None and owner.kind == "Deployment":
                wanted[(namespace, owner.name)] = None
    return tuple(_pod_crash_snapshot(ns, name, detail=False) for ns, name in wanted)


@probe_task("probe-hpa-decisions")
def probe_hpa_decisions(namespace: str, hpa: str, worker_deployment: str) -> HpaThrashSnapshot:
    """Runbook B: `describe hpa` (its rescale decisions), the worker log's task lines, and
    which pods of the HPA's target crash-loop (by the target's own selector)."""
    c = cluster()
    found = c.hpa(namespace, hpa)
    try:
        logs = c.deployment_logs(namespace, worker_deployment, tail=WORKER_LOG_TAIL)
    except PermanentError:  # no worker pod to read: no task lines, not a failed probe
        logs = None
    lines = tuple(
        line
        for line in ((logs.text or "") if logs is not None else "").splitlines()
        if WORKER_TASK_LINE.search(line)
    )
    target = found.target.name if found is not None and found.target.name else None
    workload = c.deployment(namespace, target) if target else None
    selector = workload.selector.render() if workload is not None else ""
    now = datetime.now(UTC)
    crashing = tuple(
        p.name
        for p in (c.pods(namespace, selector) if selector else ())
        if is_crash_looping(p, now)
    )
    return HpaThrashSnapshot(
        observed_at=now,
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


class RedisInPod:
    """The queue depth without a broker connection from here: `kubectl exec redis-master-0 --
    redis-cli llen QUEUE` for the queue's list and each of its priority lanes (as the broker
    adapter counts them), authenticated with REMEDIATE_REDIS__PASSWORD when set, read through
    the cluster as an operator would."""

    def __init__(self, namespace: str, pod: str, password: SecretStr | None = None) -> None:
        self.namespace, self.pod, self.password = namespace, pod, password

    def queue_depth(self, queue: str) -> int:
        return sum(self._llen(lane) for lane in queue_lanes(queue))

    def _llen(self, key: str) -> int:
        command = redis_cli(("llen", key), self.password)
        result = cluster().exec(self.namespace, self.pod, command)
        text = result.stdout.strip().removeprefix("(integer) ")
        if not result.ok or not text.isdigit():
            answer = (result.stderr or result.stdout).strip() or f"exit {result.exit_code}"
            raise PermanentError(f"{command.shown()!r} in {self.namespace}/{self.pod}: {answer}")
        return int(text)


def queue_reader() -> QueueDepth:
    """The broker when REMEDIATE_CELERY__BROKER_URL is set, else redis-cli in the Redis pod."""
    settings = Settings()
    if settings.celery.configured:
        return workers()
    w = settings.workloads
    return RedisInPod(w.namespace, w.redis_pod, settings.redis.password)


def how_queue_is_read() -> str:
    settings = Settings()
    if settings.celery.configured:
        return "the broker"
    w = settings.workloads
    return f"redis-cli in {w.namespace}/{w.redis_pod} (no broker configured)"


@probe_task("probe-queue-depth")
def probe_queue_depth(queue: str) -> int:
    """Runbook C's alarm measure: messages waiting in `queue`, from the broker when one is
    configured, else from `redis-cli llen` in the Redis pod."""
    return queue_reader().queue_depth(queue)


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
    inspect = c.exec_in_deployment(namespace, deployment, celery_inspect_active())
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
