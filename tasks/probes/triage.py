"""What triage looks at, in one place: every probe of the tree, aimed by the alerts.

The alerts say where to look first (the pods, Deployments and HPA they name); the watched
namespaces (`Workloads.scope`) are scanned for crash-looping pods whatever the alerts say, one
pod list per namespace. A probe that cannot look is recorded as such (`queue_not_probed`, the
broker's error), never as a fault.

`probe_incident` is triage's probe step: one task run ("probe-incident") that makes every
probe's reads, the probes at once (each is an independent set of reads, so the snapshot takes
about as long as the slowest). Each probe keeps its own retry policy inside the task: a
transient error retries that probe alone, with the delays its own task would use
(`tasks.retries.RETRY_DELAYS`, logged in the task run), a permanent one fails the step at once;
the queue depth is read once plus one retry, as before. One task run instead of seven: each
task run costs Prefect's engine and server work that the triage run waited for before it could
act, and the seven probes were never decisions of their own in the audit trail (the decision
artifact lists what each saw).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger

from tasks.adapters.errors import AdapterError, TransientError
from tasks.connection import settings as current_settings
from tasks.models.alerts import Alert, alert_target
from tasks.models.diagnosis import TriageDecision
from tasks.models.snapshots import QueueSnapshot, TriageSnapshot
from tasks.probes.platform import probe_ingress, probe_jwks, probe_stateful
from tasks.probes.workload import (
    how_queue_is_read,
    probe_crash_scan,
    probe_hpa_decisions,
    probe_queue_depth,
    probe_worker_activity,
)
from tasks.retries import RETRY_DELAYS
from tasks.run_context import Concurrently
from tasks.settings import Settings

T = TypeVar("T")

# Triage reads the broker once, plus a retry: a broker that does not answer is evidence for the
# decision (Redis may be the very thing that is down), not a reason to hold up every branch.
QUEUE_PROBE_RETRIES = 1


def retried(
    probe: Callable[..., T], *args: Any, retries: int = len(RETRY_DELAYS), **kwargs: Any
) -> T:
    """One probe's reads, retried on a transient error as its own task would retry them
    (`RETRY_DELAYS`); a permanent error, or the last transient one, is raised."""
    name = getattr(probe, "name", getattr(probe, "__name__", "probe"))
    read = getattr(probe, "fn", probe)  # the probe's function, inside this task run
    for attempt in range(retries + 1):
        try:
            result: T = read(*args, **kwargs)
            return result
        except TransientError as exc:
            if attempt >= retries:
                raise
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            if TaskRunContext.get() is not None:
                get_run_logger().info(
                    "%s: %s: retry %d/%d in %g s", name, exc, attempt + 1, retries, delay
                )
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


def _queue_depth(queue: str) -> tuple[int | None, str]:
    """(depth, why not), from the broker or `redis-cli llen` in the Redis pod."""
    try:
        return retried(probe_queue_depth, queue, retries=QUEUE_PROBE_RETRIES), ""
    except AdapterError as exc:
        return None, f"{how_queue_is_read()}: {exc}"


def probe_queue(settings: Settings, named: Sequence[str] = ()) -> QueueSnapshot | None:
    """Branch C's evidence: the depth of the queue the alerts name (celery-exporter's
    `queue_name`) and of the configured one, the deeper of those that could be read, and
    `celery inspect active` in a worker pod."""
    w, broker = settings.workloads, settings.celery
    read = {q: _queue_depth(q) for q in dict.fromkeys([*named, broker.queues[0]])}
    known = [(depth, q) for q, (depth, _) in read.items() if depth is not None]
    queue = max(known)[1] if known else broker.queues[0]
    depth, error = read[queue]
    try:
        return retried(
            probe_worker_activity,
            w.namespace,
            w.worker_deployment,
            queue,
            depth,
            alarm=broker.queue_depth_alarm,
            broker_error=error,
        )
    except AdapterError as exc:  # no worker pod to exec in: the depth still counts
        return QueueSnapshot(
            observed_at=datetime.now(UTC),
            namespace=w.namespace,
            deployment_name=w.worker_deployment,
            queue=queue,
            depth=depth,
            active_tasks=None,
            workers=None,
            inspect_output=str(exc),
            alarm=broker.queue_depth_alarm,
            broker_error=error,
        )


@task(name="probe-incident", cache_policy=NO_CACHE)
def probe_incident(
    alerts: Sequence[Alert] = (), decision: TriageDecision | None = None
) -> TriageSnapshot:
    """Everything triage looks at, every probe at once: the stores (F), JWKS (D), the ingress
    and its backends (E), crash-looping pods in every watched namespace (A, B), the HPA's
    decisions (B) and the queue (C). `decision` (a re-check after a fix) makes sure its target
    is looked at even when it no longer crashes."""
    settings = current_settings()
    w = settings.workloads
    targets = [alert_target(a) for a in alerts if a.firing]
    pods = [(t.namespace or w.namespace, t.pod) for t in targets if t.pod]
    deployments = [(t.namespace or w.namespace, t.deployment) for t in targets if t.deployment]
    if decision is not None and decision.target and decision.namespace:
        deployments.append((decision.namespace, decision.target))
    hpa = next((t for t in targets if t.hpa), None)
    with Concurrently(workers=6) as at_once:
        crashes = at_once(lambda: retried(probe_crash_scan, list(w.scope), pods, deployments))
        stateful = at_once(
            lambda: retried(probe_stateful, w.namespace, w.postgres_selector, w.redis_pod)
        )
        jwks = at_once(
            lambda: retried(
                probe_jwks,
                w.namespace,
                w.core_deployment,
                settings.auth.jwks_url,
                w.admin_namespace,
                w.control_plane_deployment,
                w.auth_enforce_variable,
            )
        )
        ingress = at_once(
            lambda: retried(
                probe_ingress,
                w.ingress_namespace,
                w.ingress_controller,
                [
                    (w.namespace, w.client_deployment),
                    (w.admin_namespace, w.control_plane_deployment),
                ],
            )
        )
        hpa_decisions = at_once(
            lambda: retried(
                probe_hpa_decisions,
                (hpa.namespace or w.namespace) if hpa else w.namespace,
                hpa.hpa if hpa and hpa.hpa else w.hpa,
                w.worker_deployment,
            )
        )
        queue = at_once(lambda: probe_queue(settings, [t.queue for t in targets if t.queue]))
    return TriageSnapshot(
        observed_at=datetime.now(UTC),
        stateful=stateful(),
        jwks=jwks(),
        ingress=ingress(),
        crashes=crashes(),
        hpa=hpa_decisions(),
        queue=queue(),
    )
