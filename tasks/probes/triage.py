"""What triage looks at, in one place: every probe of the tree, aimed by the alerts.

The alerts say where to look first (the pods, Deployments and HPA they name); the watched
namespaces (`Workloads.scope`) are scanned for crash-looping pods whatever the alerts say, one
pod list per namespace. A probe that cannot look is recorded as such (`queue_not_probed`, the
broker's error), never as a fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from tasks.adapters.errors import AdapterError
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
from tasks.settings import Settings

# Triage reads the broker once, plus a retry: a broker that does not answer is evidence for the
# decision (Redis may be the very thing that is down), not a reason to hold up every branch.
QUEUE_PROBE_RETRIES = 1


def _queue_depth(queue: str) -> tuple[int | None, str]:
    """(depth, why not), from the broker or `redis-cli llen` in the Redis pod."""
    try:
        return probe_queue_depth.with_options(retries=QUEUE_PROBE_RETRIES)(queue), ""
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
        return probe_worker_activity(
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


def probe_incident(
    settings: Settings, alerts: Sequence[Alert] = (), decision: TriageDecision | None = None
) -> TriageSnapshot:
    """Everything triage looks at. `decision` (a re-check after a fix) makes sure its target
    is looked at even when it no longer crashes."""
    w = settings.workloads
    targets = [alert_target(a) for a in alerts if a.firing]
    pods = [(t.namespace or w.namespace, t.pod) for t in targets if t.pod]
    deployments = [(t.namespace or w.namespace, t.deployment) for t in targets if t.deployment]
    if decision is not None and decision.target and decision.namespace:
        deployments.append((decision.namespace, decision.target))
    hpa = next((t for t in targets if t.hpa), None)
    return TriageSnapshot(
        observed_at=datetime.now(UTC),
        stateful=probe_stateful(w.namespace, w.postgres_selector, w.redis_pod),
        jwks=probe_jwks(
            w.namespace,
            w.core_deployment,
            settings.auth.jwks_url,
            w.admin_namespace,
            w.control_plane_deployment,
            w.auth_enforce_variable,
        ),
        ingress=probe_ingress(
            w.ingress_namespace,
            w.ingress_controller,
            [(w.namespace, w.client_deployment), (w.admin_namespace, w.control_plane_deployment)],
        ),
        crashes=probe_crash_scan(list(w.scope), pods, deployments),
        hpa=probe_hpa_decisions(
            (hpa.namespace or w.namespace) if hpa else w.namespace,
            hpa.hpa if hpa and hpa.hpa else w.hpa,
            w.worker_deployment,
        ),
        queue=probe_queue(settings, [t.queue for t in targets if t.queue]),
    )
