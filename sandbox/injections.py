"""The runbook's incidents, injectable by name into a running sandbox.

Each incident flips behaviour knobs (or, where a real cluster would show it, changes a stored
object, such as a NetworkPolicy someone applied) and lets the controllers make the symptoms
appear on the next ticks. Each one is documented with its symptom, the runbook branch and
mitigation that fixes it, and mitigations that do NOT fix it, so an end-to-end test can tell a
real fix from a lucky one: the right mitigation followed by a few ticks heals it, the wrong ones
leave it in place.

Names: a base name per runbook branch, variants after a colon (`jwks-503:egress-blocked`); the
bare variant name is accepted too (`egress-blocked`). What the broken programs print is in
`sandbox.incident_logs`. The cluster conditions (`sandbox.conditions`) compose with every
incident and change no incident's right or wrong mitigations; the one incident a condition rules
out (postgres-down under managed-postgres) refuses to inject with an IncidentError saying why.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.backlog import start_backlog
from sandbox.cluster import SandboxCluster
from sandbox.control_plane import BACKLOG_RATE_LIMITED_CALLS, CP_APP, CP_NAMESPACE
from sandbox.execs import managed_postgres_host
from sandbox.incident_effects import AuthRequests, ThrashCrashes, WorkersNeedRedis
from sandbox.incident_logs import (
    CONTROLLER_CRASH_LOG,
    CORRUPT_CACHE_LOG,
    CP_STALE_LOCK_LOG,
    NODE_DISK_CACHE_LOG,
    POSTGRES_CRASH_LOG,
    REDIS_CRASH_LOG,
    WEDGED_CLIENT_LOG,
)
from sandbox.relapse import EFFECT as RELAPSE_EFFECT
from sandbox.relapse import Relapse, relapse_after_seconds
from sandbox.resources import NETWORK_POLICY, POD
from sandbox.shapes import is_active
from sandbox.store import Obj

NS, INGRESS_NS = "alphaswarm", "ingress-nginx"


class UnknownIncident(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown incident {self.name!r}; known: {', '.join(names())}"


class IncidentError(RuntimeError):
    """The cluster lacks what the incident needs (e.g. an unseeded sandbox)."""


@dataclass(frozen=True)
class Incident:
    name: str
    branch: str  # the runbook scenario, "A" to "F"
    summary: str  # one line for listings
    symptom: str
    mitigation: str  # the runbook's, which heals it
    wrong: tuple[str, ...]  # plausible mitigations that do NOT heal it
    inject: Callable[[SandboxCluster], None]


# -- helpers ---------------------------------------------------------------------------------


def _pods(cluster: SandboxCluster, namespace: str, selector: str) -> list[Obj]:
    pods, _ = cluster.store.list(POD, namespace, labels=selector)
    active = sorted((p for p in pods if is_active(p)), key=lambda p: p["metadata"]["name"])
    if not active:
        raise IncidentError(f"no running pods match {selector} in {namespace}")
    return active


def _pod(cluster: SandboxCluster, namespace: str, name: str) -> Mapping[str, Any]:
    pod = cluster.store.get(POD, namespace, name)
    if pod is None or not is_active(pod):
        raise IncidentError(f"pod {namespace}/{name} is not running")
    return pod


def _log(cluster: SandboxCluster, pods: Sequence[Mapping[str, Any]], lines: list[str]) -> None:
    for pod in pods:
        container = pod["spec"]["containers"][0]["name"]
        cluster.runtime.append_log(pod["metadata"]["uid"], container, *lines)


def _celery_stamp(offset: float, level: str, proc: str) -> str:
    t = datetime.now(UTC).timestamp() + offset
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    return f"[{stamp}: {level}/{proc}]"


# -- A: a single pod crashes -----------------------------------------------------------------


def crashloop_single(cluster: SandboxCluster) -> None:
    """One core pod's local feature cache (an emptyDir) is corrupt: that instance exits on every
    start, its replacement starts with an empty cache."""
    _corrupt_core_cache(cluster)


def _corrupt_core_cache(cluster: SandboxCluster) -> str:
    """Crash the first core pod on a corrupt cache; returns its uid."""
    uid = str(_pods(cluster, NS, "app=alphaswarm-core")[0]["metadata"]["uid"])
    cluster.behaviour.set_pod(uid, crash_looping=True, crash_log=CORRUPT_CACHE_LOG, exit_code=3)
    return uid


def crashloop_relapse(cluster: SandboxCluster) -> None:
    """As crashloop-single, but the corruption comes back once: a while after the rollout
    restart, one new pod refreshes its cache from the same bad snapshot. The new pods run healthy
    for `sandbox.relapse.relapse_after_seconds()` (20 s unless set; that module says how), then
    one of them crash-loops the same way until a second restart, which holds for good."""
    uid = _corrupt_core_cache(cluster)
    cluster.effects[RELAPSE_EFFECT] = Relapse(uid, relapse_after_seconds(), CORRUPT_CACHE_LOG)


def cp_crashloop(cluster: SandboxCluster) -> None:
    """The control plane's scheduler lock file, on an emptyDir, was left behind by a container
    that died holding it: every restart of this pod refuses to start; a new pod has a fresh
    emptyDir. Requests to /manage answer 503 from ingress-nginx while it has no ready pod."""
    pod = _pods(cluster, CP_NAMESPACE, f"app={CP_APP}")[0]
    cluster.behaviour.set_pod(
        pod["metadata"]["uid"], crash_looping=True, crash_log=CP_STALE_LOCK_LOG, exit_code=1
    )


# -- B: several pods crash, HPA thrash -------------------------------------------------------


def crashloop_several(cluster: SandboxCluster) -> None:
    """The node holding the most core pods had a moment of local-disk I/O errors: the emptyDir
    feature caches of the two core pods there are corrupt, so both exit on every start; pods
    elsewhere, and new pods, are fine. Nothing runaway, no CPU spike: the HPA stays calm."""
    by_node: dict[str, list[Obj]] = {}
    for pod in _pods(cluster, NS, "app=alphaswarm-core"):
        by_node.setdefault(pod["spec"].get("nodeName") or "", []).append(pod)
    node_pods = max(by_node.values(), key=len)
    if len(node_pods) < 2:
        raise IncidentError("crashloop-several needs two alphaswarm-core pods on one node")
    for pod in node_pods[:2]:
        cluster.behaviour.set_pod(
            pod["metadata"]["uid"], crash_looping=True, crash_log=NODE_DISK_CACHE_LOG, exit_code=3
        )


def hpa_thrash(cluster: SandboxCluster) -> None:
    """A runaway grid-search backtest pins CPU: the HPA flaps 3 <-> 8 and two core pods are
    OOM-killed while it does; the worker log shows the task started and FAILED, repeatedly."""
    workers = _pods(cluster, NS, "app=alphaswarm-worker")
    cluster.behaviour.hpa_flap(NS, "alphaswarm-core", 3, 8)
    cluster.effects["hpa-thrash"] = ThrashCrashes()
    rng = random.Random(4471)
    lines = []
    for attempt in range(3):
        task = f"alphaswarm.tasks.backtest[{uuid.UUID(int=rng.getrandbits(128), version=4)}]"
        at = -90.0 + 30 * attempt
        lines += [
            f"{_celery_stamp(at, 'INFO', 'MainProcess')} Task {task} received",
            f"{_celery_stamp(at + 1, 'INFO', 'ForkPoolWorker-3')} Task {task} started "
            "strategy=grid-search-all run_id=4471 universe=ALL horizon=20y",
            f"{_celery_stamp(at + 25, 'ERROR', 'ForkPoolWorker-3')} Task {task} FAILED "
            "strategy=grid-search-all run_id=4471: WorkerLostError('Worker exited prematurely: "
            "signal 9 (SIGKILL) Job: 17.')",
        ]
    _log(cluster, workers, lines)


# -- C: all dependencies degraded, queue backlog ---------------------------------------------


def queue_backlog(cluster: SandboxCluster) -> None:
    """Market-data APIs and the control plane rate-limit (429); workers slow down on retries and
    the Celery queue grows, and keeps growing until there are enough workers. Real Celery
    workers get a steady producer through the hook (`sandbox.celery_backlog`); without them the
    `backtests` list in Redis is simulated (`sandbox.backlog`)."""
    workers = _pods(cluster, NS, "app=alphaswarm-worker")
    cp = cluster.control_plane
    cp.rate_limit(cp.backlog_rate_limited_calls, retry_after_seconds=1)
    lines = []
    for i in range(4):
        task = f"alphaswarm.tasks.backtest[{uuid.UUID(int=random.Random(i).getrandbits(128))}]"
        lines += [
            f"{_celery_stamp(-40 + 10 * i, 'WARNING', 'ForkPoolWorker-1')} market data "
            "rate-limited: 429 Too Many Requests from https://api.polygon.io/v2/aggs "
            "(x-ratelimit-remaining: 0)",
            f"{_celery_stamp(-39 + 10 * i, 'INFO', 'ForkPoolWorker-1')} Task {task} retry: "
            "Retry in 30s: RateLimited('429 Too Many Requests')",
        ]
    _log(cluster, workers, lines)
    if cluster.queue_backlog_hook is not None:
        cluster.queue_backlog_hook(cluster)
    else:
        start_backlog(cluster)


# -- D: Auth0 JWKS -----------------------------------------------------------------------------


def auth0_down(cluster: SandboxCluster) -> None:
    """Auth0 has an incident: its JWKS endpoint answers 503 from everywhere."""
    cluster.behaviour.jwks_status = 503
    cluster.effects["jwks"] = AuthRequests()


def _allows_443_out(rule: Mapping[str, Any]) -> bool:
    ports = rule.get("ports") or []
    return any(p.get("port") == 443 for p in ports) or not ports


def egress_blocked(cluster: SandboxCluster) -> None:
    """Someone re-applied network-policies.yaml without the 443 rule: alphaswarm-core may only
    reach DNS, Postgres and Redis. JWKS answers from outside the cluster, not from the pod."""
    name = "alphaswarm-core-egress"
    if cluster.store.get(NETWORK_POLICY, NS, name) is None:
        cluster.store.create(
            NETWORK_POLICY,
            {
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "alphaswarm-core"}},
                    "policyTypes": ["Egress"],
                    "egress": [],
                },
            },
        )
    else:

        def drop_443(policy: Obj) -> None:
            rules = policy["spec"].get("egress") or []
            policy["spec"]["egress"] = [r for r in rules if not _allows_443_out(r)]

        cluster.store.update(NETWORK_POLICY, NS, name, drop_443)
    cluster.effects["jwks"] = AuthRequests()


def dns_failure(cluster: SandboxCluster) -> None:
    """CoreDNS lost its upstream: names outside the cluster no longer resolve in pods."""
    cluster.behaviour.external_dns = False
    cluster.effects["jwks"] = AuthRequests()


def restore_egress(cluster: SandboxCluster) -> None:
    """The real fix for egress-blocked (not one the runbook lists): put the 443 rule back."""

    def add_443(policy: Obj) -> None:
        rules = policy["spec"].setdefault("egress", [])
        if not any(_allows_443_out(r) for r in rules):
            rules.insert(
                0,
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                },
            )

    cluster.store.update(NETWORK_POLICY, NS, "alphaswarm-core-egress", add_443)


# -- E: ingress 503 ----------------------------------------------------------------------------


def ingress_503(cluster: SandboxCluster) -> None:
    """After a config reload the client pods are wedged: /api/health answers 503, so their
    readiness probe fails and the alphaswarm-client Endpoints empty; fresh pods are fine."""
    pods = _pods(cluster, NS, "app=alphaswarm-client")
    for pod in pods:
        cluster.behaviour.set_pod(pod["metadata"]["uid"], ready=False)
    _log(cluster, pods, WEDGED_CLIENT_LOG)


def ingress_controller_down(cluster: SandboxCluster) -> None:
    """The ingress-nginx controller pod crash-loops after a failed reload left a process on
    port 80 in its network namespace; a fresh controller pod starts cleanly."""
    pod = _pods(cluster, INGRESS_NS, "app.kubernetes.io/name=ingress-nginx")[0]
    cluster.behaviour.set_pod(
        pod["metadata"]["uid"], crash_looping=True, crash_log=CONTROLLER_CRASH_LOG, exit_code=1
    )


# -- F: stateful services ----------------------------------------------------------------------


def postgres_down(cluster: SandboxCluster) -> None:
    """postgres-0's /dev/shm is full of segments a crashed backend left: this instance cannot
    start, a recreated pod (same PVC, same data) can. Refused when Postgres is managed outside
    the cluster: there is no postgres pod to break, and the sandbox does not simulate RDS."""
    host = managed_postgres_host(cluster)
    if host is not None:
        raise IncidentError(
            f"postgres-down cannot be injected: Postgres is managed outside the cluster (Service "
            f"postgres is an ExternalName for {host}); there is no postgres pod to crash"
        )
    pod = _pod(cluster, NS, "postgres-0")
    cluster.behaviour.set_pod(
        pod["metadata"]["uid"], crash_looping=True, crash_log=POSTGRES_CRASH_LOG, exit_code=1
    )


def redis_down(cluster: SandboxCluster) -> None:
    """redis-master-0 cannot bind its port (a stale process in its network namespace); the
    Celery workers crash while the broker is down and recover once it is back."""
    pod = _pod(cluster, NS, "redis-master-0")
    cluster.behaviour.set_pod(
        pod["metadata"]["uid"], crash_looping=True, crash_log=REDIS_CRASH_LOG, exit_code=1
    )
    cluster.effects["redis-down"] = WorkersNeedRedis()


# -- the registry ------------------------------------------------------------------------------

_RESTART_CORE = "kubectl rollout restart -n alphaswarm deployment/alphaswarm-core"
_RESTART_CP = "kubectl rollout restart -n alphaswarm-admin deployment/alphaswarm-cp"
_PERMISSIVE = (
    "kubectl set env -n alphaswarm deploy/alphaswarm-core ALPHASWARM_AUTH_ENFORCE=permissive"
)
_WIDEN = "kubectl patch hpa alphaswarm-core (scaleUp.stabilizationWindowSeconds=300)"

_HPA_THRASH = Incident(
    "hpa-thrash",
    "B",
    "a runaway backtest spikes CPU; the core HPA flaps 3<->8 and two core pods are OOM-killed",
    "alternating SuccessfulRescale events (New size: 8 / New size: 3) on hpa/alphaswarm-core, "
    "two core pods cycling OOMKilled/CrashLoopBackOff (exit 137, lastState OOMKilled), worker "
    "log shows grid-search-all run 4471 started / FAILED",
    _WIDEN,
    (_RESTART_CORE, "kubectl scale deployment/alphaswarm-core --replicas=8"),
    hpa_thrash,
)
_AUTH0_DOWN = Incident(
    "jwks-503",
    "D",
    "Auth0 is down: the JWKS endpoint answers 503 from everywhere",
    "core logs jwks_unreachable and 401s; curl of the JWKS URL fails with 503 inside the pod "
    "and from this process",
    _PERMISSIVE,
    (_RESTART_CORE,),
    auth0_down,
)

INCIDENTS: dict[str, Incident] = {
    i.name: i
    for i in (
        Incident(
            "crashloop-single",
            "A",
            "one alphaswarm-core pod crash-loops on a corrupt local cache",
            "one core pod cycles Running/Error/CrashLoopBackOff with growing restarts; `logs "
            "--previous` shows sqlite3.DatabaseError: database disk image is malformed",
            _RESTART_CORE,
            (_WIDEN, _PERMISSIVE),
            crashloop_single,
        ),
        Incident(
            "crashloop-single:relapse",
            "A",
            "one alphaswarm-core pod crash-loops on a corrupt cache; after the rollout restart "
            "the crash returns once, in a new pod",
            "as crashloop-single; after the restart the core pods run Ready for a while (20 s by "
            "default), then one pod of the new ReplicaSet cycles Running/Error/CrashLoopBackOff "
            "with the same `logs --previous`, and stays so until restarted again",
            _RESTART_CORE + " (twice: the first fix holds for a while, the relapse needs another)",
            (_WIDEN, _PERMISSIVE),
            crashloop_relapse,
        ),
        Incident(
            "cp-crashloop",
            "A",
            "the alphaswarm-cp pod crash-loops on a stale scheduler lock left on its emptyDir",
            "alphaswarm-cp pod in alphaswarm-admin cycles Running/Error/CrashLoopBackOff; `logs "
            "--previous` shows scheduler_lock ... refusing to start a second scheduler; /manage "
            "answers 503 (no ready endpoint)",
            _RESTART_CP,
            (_RESTART_CORE, _WIDEN),
            cp_crashloop,
        ),
        _HPA_THRASH,
        Incident(
            "crashloop-several",
            "B",
            "two core pods on one node crash-loop on caches a local-disk hiccup corrupted; the "
            "HPA is calm",
            "two alphaswarm-core pods (same node) cycle Running/Error/CrashLoopBackOff, `logs "
            "--previous`: sqlite3.DatabaseError: file is not a database; no SuccessfulRescale "
            "events, the worker log shows no runaway task",
            _RESTART_CORE + " (replacement pods start with empty caches)",
            (_WIDEN, "kubectl scale -n alphaswarm deployment/alphaswarm-core --replicas=8"),
            crashloop_several,
        ),
        Incident(
            "queue-backlog",
            "C",
            "dependencies rate-limit (429); the Celery backtests queue grows faster than 2 workers "
            "drain it",
            "worker logs show 429 and retries, the control plane answers 429 for "
            f"{BACKLOG_RATE_LIMITED_CALLS} calls, the queue (`redis-cli llen backtests` in "
            "redis-master-0, or the real broker's `celery` list) stays above the alarm however "
            "long one waits",
            "scale alphaswarm-worker to 8 (control plane PATCH .../scale?replicas=8 or kubectl "
            "scale)",
            (
                "kubectl rollout restart -n alphaswarm deployment/alphaswarm-worker",
                _RESTART_CORE,
            ),
            queue_backlog,
        ),
        _AUTH0_DOWN,
        Incident(
            "jwks-503:auth0-down",
            "D",
            "Auth0 is down (same as jwks-503)",
            _AUTH0_DOWN.symptom,
            _AUTH0_DOWN.mitigation,
            _AUTH0_DOWN.wrong,
            auth0_down,
        ),
        Incident(
            "jwks-503:egress-blocked",
            "D",
            "the core egress NetworkPolicy lost its 443 rule: JWKS works outside, not in the pod",
            "jwks_unreachable in core logs; JWKS 200 from this process; curl in the pod: "
            "(28) Failed to connect ... port 443",
            _PERMISSIVE + " (the real fix, restoring the 443 rule, is not a runbook mitigation)",
            (_RESTART_CORE,),
            egress_blocked,
        ),
        Incident(
            "jwks-503:dns-failure",
            "D",
            "cluster DNS cannot resolve external names: curl in the pod cannot resolve Auth0",
            "jwks_unreachable in core logs; JWKS 200 from this process; curl in the pod: "
            "(6) Could not resolve host",
            _PERMISSIVE,
            (_RESTART_CORE,),
            dns_failure,
        ),
        Incident(
            "ingress-503",
            "E",
            "client pods wedged after a config reload fail readiness; alphaswarm-client "
            "Endpoints are empty",
            "Endpoints alphaswarm-client empty, Unhealthy events 'Readiness probe failed: HTTP "
            "probe failed with statuscode: 503', client log shows the reload",
            "kubectl rollout restart -n alphaswarm deployment/alphaswarm-client",
            (
                "kubectl rollout restart -n ingress-nginx deployment/ingress-nginx-controller",
                _RESTART_CORE,
            ),
            ingress_503,
        ),
        Incident(
            "ingress-503:ingress-controller-down",
            "E",
            "the ingress-nginx controller pod crash-loops (port 80 held after a failed reload)",
            "ingress-nginx controller CrashLoopBackOff, its Endpoints empty, log shows bind() "
            "Address already in use",
            "kubectl rollout restart -n ingress-nginx deployment/ingress-nginx-controller",
            ("kubectl rollout restart -n alphaswarm deployment/alphaswarm-client",),
            ingress_controller_down,
        ),
        Incident(
            "postgres-down",
            "F",
            "postgres-0 crash-loops (its /dev/shm is full); data is safe on the PVC (refused "
            "under managed-postgres)",
            "postgres-0 CrashLoopBackOff, pg_isready: no response, runs list fails",
            "kubectl -n alphaswarm delete pod -l app=postgres",
            (_RESTART_CORE, "kubectl rollout restart -n alphaswarm deployment/alphaswarm-worker"),
            postgres_down,
        ),
        Incident(
            "redis-down",
            "F",
            "redis-master-0 crash-loops (port held by a stale process); workers crash with it",
            "redis-master-0 CrashLoopBackOff, redis-cli ping refused, alphaswarm-worker pods "
            "CrashLoopBackOff on 'Cannot connect to redis'",
            "kubectl -n alphaswarm delete pod redis-master-0",
            ("kubectl rollout restart -n alphaswarm deployment/alphaswarm-worker",),
            redis_down,
        ),
    )
}


def names() -> list[str]:
    return list(INCIDENTS)


def resolve(name: str) -> Incident:
    """The incident by canonical name (`jwks-503:egress-blocked`) or bare variant name."""
    if name in INCIDENTS:
        return INCIDENTS[name]
    for canonical, incident in INCIDENTS.items():
        if canonical.partition(":")[2] == name:
            return incident
    raise UnknownIncident(name)


def inject(cluster: SandboxCluster, name: str) -> Incident:
    incident = resolve(name)
    incident.inject(cluster)
    return incident


def heal(cluster: SandboxCluster) -> None:
    """Reset every knob, effect and background producer an incident may have set (for tests and
    rehearsal resets); the cluster's conditions stay.

    Stored objects an incident changed stay as they are, as they would after a real incident;
    `restore_egress` puts the core egress rule back."""
    b = cluster.behaviour
    with b._lock:
        b.workloads.clear()
        b.pods.clear()
        b.hpas.clear()
    b.jwks_status, b.external_dns = 200, True
    cluster.effects.clear()
    cluster.stop_background()
    cluster.control_plane.rate_limit(0)
