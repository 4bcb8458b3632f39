"""Convergence checks: each `verify_*` raises NotYetHealthy until the fix has taken hold, and
its task retries do the polling. A verify that can never pass (a rollout past its progress
deadline) raises VerifyFailed at once instead of burning the retry budget.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.adapters.cluster import Pod, RolloutState, RolloutStatus
from tasks.adapters.exec_commands import curl_jwks
from tasks.connection import cluster, http_endpoints, workers
from tasks.diagnoses.crashes import crashed_since
from tasks.probes.platform import jwks_keys
from tasks.probes.workload import QueueDepth, queue_reader
from tasks.retries import NotYetHealthy, verify_task


class VerifyFailed(Exception):
    """The change cannot converge; polling longer will not help."""


@verify_task("verify-rollout-complete")
def verify_rollout_complete(namespace: str, deployment: str) -> RolloutStatus:
    """`kubectl rollout status`: complete, or not yet; a blown progress deadline fails."""
    status = cluster().rollout_status(namespace, deployment)
    if status is None:
        raise VerifyFailed(f"deployment {namespace}/{deployment} is gone")
    if status.state is RolloutState.FAILED:
        raise VerifyFailed(status.message)
    if not status.done:
        raise NotYetHealthy(status.message)
    return status


@verify_task("verify-pods-not-crashing")
def verify_pods_not_crashing(
    namespace: str, deployment: str, crashed: list[str], since: datetime
) -> int:
    """The crashed pods are gone or healthy, no pod of the Deployment has crashed since the fix
    (`since`), and as many are ready as the Deployment wants. Returns the ready count."""
    c = cluster()
    found = c.deployment(namespace, deployment)
    if found is None:
        raise VerifyFailed(f"deployment {namespace}/{deployment} is gone")
    pods = [p for p in c.pods(namespace, found.selector.render() or None) if not p.deleting]
    looping = [
        p.name for p in pods if crashed_since(p, since) or (p.name in crashed and not p.is_ready)
    ]
    # A pod the fix itself started that crashes is the answer: waiting will not change it.
    own = [p.name for p in pods if p.name in looping and started_after(p, since)]
    if own:
        raise VerifyFailed(f"{', '.join(own)}, started by the fix, crashed since")
    if looping:
        raise NotYetHealthy(f"still crashing: {', '.join(looping)}")
    ready = sum(1 for p in pods if p.is_ready)
    wanted = found.replicas if found.replicas is not None else 1
    if ready < wanted:
        raise NotYetHealthy(f"{ready}/{wanted} pods ready")
    return ready


def started_after(pod: Pod, since: datetime) -> bool:
    """Created after `since`; creationTimestamp has whole seconds, so the second `since` falls
    in counts as after."""
    return pod.created_at is not None and pod.created_at > since - timedelta(seconds=1)


@verify_task("verify-hpa-stable")
def verify_hpa_stable(
    namespace: str, hpa: str, window_seconds: int, since: datetime, quiet_seconds: float
) -> int:
    """The window is applied and no rescale happened for `quiet_seconds` (and at least that long
    after `since`, the change): the HPA stopped alternating. Returns the window."""
    found = cluster().hpa(namespace, hpa)
    if found is None:
        raise VerifyFailed(f"hpa {namespace}/{hpa} is gone")
    up = found.behavior.scale_up if found.behavior is not None else None
    window = up.stabilization_window_seconds if up is not None else None
    if window != window_seconds:
        raise NotYetHealthy(f"scaleUp window is {window}, expected {window_seconds}")
    now = datetime.now(UTC)
    quiet = timedelta(seconds=quiet_seconds)
    if now - since < quiet:
        raise NotYetHealthy("not quiet for long enough yet")
    last = max((r.last_timestamp for r in found.rescales if r.last_timestamp), default=None)
    if last is not None and now - last < quiet:
        raise NotYetHealthy(f"rescaled at {last:%H:%M:%S}, within the last {quiet_seconds}s")
    return window_seconds


@verify_task("verify-endpoints-ready")
def verify_endpoints_ready(namespace: str, service: str, minimum: int = 1) -> int:
    """`kubectl get endpoints`: at least `minimum` ready addresses. Returns the count."""
    found = cluster().endpoints(namespace, service)
    ready = len(found.ready) if found is not None else 0
    if ready < minimum:
        raise NotYetHealthy(f"{namespace}/{service}: {ready} ready endpoint(s)")
    return ready


@verify_task("verify-jwks-healthy-for")
def verify_jwks_healthy_for(
    namespace: str, deployment: str, jwks_url: str, since: datetime, seconds: float
) -> float:
    """JWKS answers with keys from inside a core pod and from here on every poll, for `seconds`
    after `since`. A failure on the way is VerifyFailed, not "not yet": a JWKS that flaps is not
    back, and the caller decides when to look again. Returns how long it was watched."""
    here = http_endpoints().jwks(jwks_url)
    if not here.ok:
        raise VerifyFailed(f"JWKS failed again from this process: {here.failure} {here.detail}")
    curl = cluster().exec_in_deployment(namespace, deployment, curl_jwks(jwks_url))
    if not (jwks_keys(curl.stdout) if curl.ok else 0):
        raise VerifyFailed(f"JWKS failed again in {curl.pod}: {curl.stderr.strip()}")
    watched = (datetime.now(UTC) - since).total_seconds()
    if watched < seconds:
        raise NotYetHealthy(f"JWKS healthy for {watched:.0f} of {seconds:g} s")
    return watched


SYMPTOM_LOG_TAIL = 50


@verify_task("verify-pods-run-env")
def verify_pods_run_env(
    namespace: str, deployment: str, variable: str, value: str, symptom: str
) -> list[str]:
    """Every ready pod of the Deployment runs with `variable=value` in its own spec (the
    rollout reached it, whatever the app prints), as many are ready as the Deployment wants,
    and none of them logs the `symptom` any more. Returns the pods' names."""
    c = cluster()
    found = c.deployment(namespace, deployment)
    if found is None:
        raise VerifyFailed(f"deployment {namespace}/{deployment} is gone")
    pods = [p for p in c.pods(namespace, found.selector.render() or None) if not p.deleting]
    ready = [p for p in pods if p.is_ready]
    wanted = found.replicas if found.replicas is not None else 1
    if len(ready) < wanted:
        raise NotYetHealthy(f"{len(ready)}/{wanted} pods ready")
    stale = [p.name for p in ready if p.env.get(variable) != value]
    if stale:
        raise NotYetHealthy(f"not running {variable}={value} yet: {', '.join(stale)}")
    failing = [
        p.name
        for p in ready
        if symptom in (c.pod_logs(namespace, p.name, tail=SYMPTOM_LOG_TAIL) or "")
    ]
    if failing:
        raise NotYetHealthy(f"still logging {symptom}: {', '.join(failing)}")
    return [p.name for p in ready]


@verify_task("verify-stateful-ready")
def verify_stateful_ready(
    namespace: str, pod: str | None, selector: str | None, old_uids: list[str], claims: list[str]
) -> list[str]:
    """A replacement pod (new uid) is Ready, and the claims it had are still there and Bound,
    so the data survived. Returns the ready pods' names."""
    c = cluster()
    pods: tuple[Pod, ...]
    if pod is not None:
        found = c.pod(namespace, pod)
        pods = (found,) if found is not None else ()
    else:
        pods = c.pods(namespace, selector)
    fresh = [p for p in pods if p.uid not in old_uids and p.is_ready and not p.deleting]
    if not fresh:
        raise NotYetHealthy("no replacement pod is ready yet")
    for name in claims:
        claim = c.pvc(namespace, name)
        if claim is None:
            raise VerifyFailed(f"PVC {namespace}/{name} is gone: the data did not survive")
        if claim.phase != "Bound":
            raise NotYetHealthy(f"PVC {name} is {claim.phase}")
    return [p.name for p in fresh]


def check_queue_draining(reader: QueueDepth, queue: str, baseline: int) -> int:
    """Pure core of the queue verify: drained (0) passes; growing or stuck says not yet."""
    depth = reader.queue_depth(queue)
    if depth == 0:
        return 0
    trend = "growing" if depth >= baseline else "draining"
    raise NotYetHealthy(f"queue {queue}: {depth} message(s) left ({trend} from {baseline})")


@verify_task("verify-queue-draining")
def verify_queue_draining(queue: str, baseline: int) -> int:
    """The broker's queue is empty. Empty, not merely under the alarm: workers prefetch, so a
    fleet that keeps up with arrivals takes every waiting message off the list, while a queue
    that hovers just below the alarm is one burst from paging again. Returns the depth (0)."""
    return check_queue_draining(queue_reader(), queue, baseline)


@verify_task("verify-workers-online")
def verify_workers_online(namespace: str, deployment: str, replicas: int) -> int:
    """`replicas` pods of the Deployment are ready and each one's worker (celery@<pod>) answers
    a ping through the broker. Returns how many answered."""
    found = cluster().deployment(namespace, deployment)
    if found is None:
        raise VerifyFailed(f"deployment {namespace}/{deployment} is gone")
    pods = cluster().pods(namespace, found.selector.render() or None)
    ready = {p.name for p in pods if p.is_ready and not p.deleting}
    online = {h.removeprefix("celery@") for h in workers().workers_online().hostnames}
    answering = ready & online
    if len(answering) < replicas:
        raise NotYetHealthy(
            f"{len(answering)}/{replicas} workers online ({len(ready)} pod(s) ready, "
            f"{len(online)} worker(s) answer a ping)"
        )
    return len(answering)


@verify_task("verify-hold-elapsed")
def verify_hold_elapsed(since: datetime, seconds: float) -> float:
    """The hold period after a verified fix is over (the caller then looks once more whether
    the incident came back). Returns how long it waited."""
    waited = (datetime.now(UTC) - since).total_seconds()
    if waited < seconds:
        raise NotYetHealthy(f"holding: {waited:.0f} of {seconds:g} s")
    return waited
