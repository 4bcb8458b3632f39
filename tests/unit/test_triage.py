"""diagnose_incident: platform before workload, evidence before alerts, escalate when unclear."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tasks.adapters.cluster import ContainerState, ContainerStatus, Termination
from tasks.diagnoses.triage import alert_hint, alert_symptom, diagnose_incident, symptom_present
from tasks.models.alerts import Alert, parse_alertmanager
from tasks.models.diagnosis import Scenario, TriageDecision
from tasks.models.snapshots import CrashingPod, ExecCurl, TriageSnapshot
from tasks.settings import Environment
from tests.unit.factories import NOW, crashing_pod, deployment, hpa, pod, rescale
from tests.unit.test_platform_diagnoses import (
    CP_OK,
    HERE_503,
    POD_503,
    READINESS_HTTP,
    REDIS_DOWN,
    ingress,
    jwks,
    service,
    stateful,
)
from tests.unit.test_workload_diagnoses import (
    FLAPPING,
    crash_snapshot,
    hpa_snapshot,
    queue_snapshot,
)


def alerts(*names: str, status: str = "firing") -> tuple[Alert, ...]:
    body = {
        "version": "4",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": n, "namespace": "alphaswarm", "pod": "p-1"},
                "startsAt": "2026-11-28T10:00:00Z",
                "fingerprint": f"fp-{i}",
            }
            for i, n in enumerate(names)
        ],
    }
    return parse_alertmanager(body).alerts


HEALTHY: dict[str, Any] = {
    "stateful": stateful(),
    "jwks": jwks(
        from_here=HERE_503.model_copy(update={"failure": None, "keys": 2, "status": 200}),
        from_pod=POD_503.model_copy(update={"exit_code": 0, "keys": 2}),
    ),
    "ingress": ingress(),
    "crashes": (crash_snapshot(crashing=(), pods=(pod("alphaswarm-core-x"),)),),
    "hpa": hpa_snapshot(hpa=hpa()),
    "queue": queue_snapshot(depth=10),
}


def snapshot(**overrides: Any) -> TriageSnapshot:
    return TriageSnapshot(observed_at=NOW, **{**HEALTHY, **overrides})


CRASH_ONE = crash_snapshot()
WORKER_CRASHES = crash_snapshot(
    deployment_name="alphaswarm-worker",
    deployment=deployment("alphaswarm-worker"),
    pods=(crashing_pod("alphaswarm-worker-a"), crashing_pod("alphaswarm-worker-b")),
    crashing=(
        CrashingPod(pod=crashing_pod("alphaswarm-worker-a")),
        CrashingPod(pod=crashing_pod("alphaswarm-worker-b")),
    ),
)


@pytest.mark.parametrize(
    ("alert_names", "snap", "scenario", "escalate"),
    [
        ((), snapshot(), None, False),
        (("KubePodCrashLooping",), snapshot(), None, True),  # alert without evidence
        (("KubePodCrashLooping",), snapshot(crashes=(CRASH_ONE,)), Scenario.POD_CRASH, False),
        ((), snapshot(crashes=(CRASH_ONE,)), Scenario.POD_CRASH, False),
        ((), snapshot(crashes=(WORKER_CRASHES,)), Scenario.HPA_THRASH, False),
        ((), snapshot(hpa=hpa_snapshot(hpa=hpa(rescales=FLAPPING))), Scenario.HPA_THRASH, False),
        ((), snapshot(queue=queue_snapshot()), Scenario.QUEUE_BACKLOG, False),
        ((), snapshot(jwks=jwks()), Scenario.JWKS_OUTAGE, False),
        (
            (),
            snapshot(ingress=ingress(services=(service(0, 2, READINESS_HTTP), CP_OK))),
            Scenario.INGRESS_503,
            False,
        ),
        ((), snapshot(stateful=stateful(redis_pod=REDIS_DOWN)), Scenario.STATEFUL_FAILOVER, False),
        # A Redis outage crashes workers too: storage wins, workers are not blamed.
        (
            ("KubePodCrashLooping",),
            snapshot(stateful=stateful(redis_pod=REDIS_DOWN), crashes=(WORKER_CRASHES,)),
            Scenario.STATEFUL_FAILOVER,
            False,
        ),
        # Auth before ingress before workloads.
        (
            (),
            snapshot(jwks=jwks(), crashes=(CRASH_ONE,), queue=queue_snapshot()),
            Scenario.JWKS_OUTAGE,
            False,
        ),
        (
            (),
            snapshot(ingress=ingress(controller_pods=()), crashes=(CRASH_ONE,)),
            Scenario.INGRESS_503,
            False,
        ),
        # A single crash with a flapping HPA is B (several symptoms), never A.
        (
            (),
            snapshot(crashes=(CRASH_ONE,), hpa=hpa_snapshot(hpa=hpa(rescales=FLAPPING))),
            Scenario.HPA_THRASH,
            False,
        ),
        # Nothing probed at all.
        ((), TriageSnapshot(observed_at=NOW), None, False),
    ],
)
def test_diagnose_incident(
    alert_names: tuple[str, ...],
    snap: TriageSnapshot,
    scenario: Scenario | None,
    escalate: bool,
) -> None:
    decision = diagnose_incident(alerts(*alert_names), snap, Environment.DEV)
    assert (decision.scenario, decision.escalate) == (scenario, escalate), decision.reason
    assert decision.reason
    if scenario is Scenario.STATEFUL_FAILOVER and alert_names:
        assert any("explained by the datastore outage" in e for e in decision.evidence)


@pytest.mark.parametrize(
    ("name", "scenario"),
    [
        ("KubePodCrashLooping", Scenario.POD_CRASH),
        ("HpaThrashing", Scenario.HPA_THRASH),
        ("CeleryQueueBacklog", Scenario.QUEUE_BACKLOG),
        ("JwksUnreachable", Scenario.JWKS_OUTAGE),
        ("Ingress503", Scenario.INGRESS_503),
        ("RedisDown", Scenario.STATEFUL_FAILOVER),
        ("PostgresDown", Scenario.STATEFUL_FAILOVER),
        ("Watchdog", None),
    ],
)
def test_alert_hint(name: str, scenario: Scenario | None) -> None:
    assert alert_hint(alerts(name)[0]) is scenario


def test_resolved_alerts_are_history() -> None:
    decision = diagnose_incident(
        alerts("KubePodCrashLooping", status="resolved"), snapshot(), Environment.DEV
    )
    assert (decision.scenario, decision.escalate) == (None, False)


def decided(scenario: Scenario, target: str = "alphaswarm-core") -> TriageDecision:
    return TriageDecision(scenario=scenario, reason="r", namespace="alphaswarm", target=target)


FIXED_AT = NOW - timedelta(minutes=2)  # when the fix was verified
RESCALED_AFTER_FIX = (rescale(5, minutes_ago=1), rescale(3, minutes_ago=0.5))
RESCALED_BEFORE_FIX = (rescale(5, count=4, minutes_ago=5), rescale(3, count=4, minutes_ago=4))


@pytest.mark.parametrize(
    ("decision", "snap", "came_back"),
    [
        (decided(Scenario.POD_CRASH), snapshot(), None),
        (decided(Scenario.POD_CRASH), snapshot(crashes=(CRASH_ONE,)), "crash-looping"),
        # Another Deployment crashing is another incident, not this one coming back.
        (decided(Scenario.POD_CRASH), snapshot(crashes=(WORKER_CRASHES,)), None),
        # B: the lookback still holds the rescales that made the incident; only later ones count.
        (
            decided(Scenario.HPA_THRASH),
            snapshot(hpa=hpa_snapshot(hpa=hpa(300, RESCALED_BEFORE_FIX))),
            None,
        ),
        (
            decided(Scenario.HPA_THRASH),
            snapshot(hpa=hpa_snapshot(hpa=hpa(300, RESCALED_AFTER_FIX))),
            "rescaled 2 time(s) since the fix",
        ),
        (decided(Scenario.QUEUE_BACKLOG, "alphaswarm-worker"), snapshot(), None),
        (
            decided(Scenario.QUEUE_BACKLOG, "alphaswarm-worker"),
            snapshot(queue=queue_snapshot()),
            "holds",
        ),
        (decided(Scenario.JWKS_OUTAGE), snapshot(), None),
        (decided(Scenario.JWKS_OUTAGE), snapshot(jwks=jwks()), "curl exit 22"),
        (decided(Scenario.INGRESS_503, "alphaswarm-client"), snapshot(), None),
        (
            decided(Scenario.INGRESS_503, "alphaswarm-client"),
            snapshot(ingress=ingress(services=(service(0, 2, READINESS_HTTP), CP_OK))),
            "alphaswarm-client",
        ),
        (decided(Scenario.STATEFUL_FAILOVER, "redis-master-0"), snapshot(), None),
        (
            decided(Scenario.STATEFUL_FAILOVER, "redis-master-0"),
            snapshot(stateful=stateful(redis_pod=REDIS_DOWN)),
            "redis",
        ),
    ],
)
def test_symptom_after_the_fix(
    decision: TriageDecision, snap: TriageSnapshot, came_back: str | None
) -> None:
    found = symptom_present(decision, snap, FIXED_AT, Environment.DEV)
    if came_back is None:
        assert found is None
    else:
        assert found is not None and came_back.lower() in found.lower(), found


def celery_alert(name: str = "CeleryHighQueueLength", **labels: str) -> Alert:
    """celery-exporter's alerts as the rules label them (queue_name, or hostname)."""
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": name,
                    "namespace": "alphaswarm",
                    **(labels or {"queue_name": "backtests"}),
                },
                "startsAt": "2026-11-28T10:00:00Z",
                "fingerprint": "fp-queue",
            }
        ],
    }
    (alert,) = parse_alertmanager(body).alerts
    return alert


@pytest.mark.parametrize(
    ("fired", "snap", "still"),
    [
        # The case: B restarted the workers a Redis outage left backing off, and the hold
        # looked only at those pods while the queue its alert names was at its peak.
        ((celery_alert(),), snapshot(queue=queue_snapshot()), "CeleryHighQueueLength"),
        ((celery_alert(),), snapshot(), None),  # the queue drained: nothing left
        # A worker offline names no queue: its depth is not that alert's symptom.
        (
            (celery_alert("CeleryWorkerDown", hostname="alphaswarm-worker-7d9f8-abcde"),),
            snapshot(queue=queue_snapshot()),
            None,
        ),
        # The decision's own alert is the decision's symptom, looked at already.
        (alerts("KubePodCrashLooping"), snapshot(), None),
    ],
)
def test_the_hold_also_looks_at_what_each_alert_reports(
    fired: tuple[Alert, ...], snap: TriageSnapshot, still: str | None
) -> None:
    decision = decided(Scenario.HPA_THRASH, "alphaswarm-worker")
    found = alert_symptom(fired, decision, snap, FIXED_AT, Environment.DEV)
    if still is None:
        assert found is None, found
    else:
        assert found is not None and still in found, found


# -- real-cluster conditions: only a fault seen picks a branch -------------------------------------

MANAGED_POSTGRES = stateful(postgres_pods=(), postgres_pvcs=())
NO_CURL = ExecCurl(pod="core-1", exit_code=127, stderr='exec: "curl": executable file not found')
NO_EGRESS_HERE = HERE_503.model_copy(update={"failure": "connect", "status": None})
JWKS_FINE_IN_LOG = jwks(from_pod=NO_CURL, from_here=NO_EGRESS_HERE, log_read=True)
JWKS_UNKNOWN = jwks(from_pod=NO_CURL, from_here=NO_EGRESS_HERE)
NO_CONTROLLER = ingress(controller=None, controller_pods=())
RUNNING_BETWEEN_CRASHES = pod(
    "alphaswarm-core-abc",
    restarts=5,
    last_termination=Termination(
        exit_code=3, reason="Error", finished_at=NOW - timedelta(seconds=40)
    ),
    container_statuses=(
        ContainerStatus(
            name="app",
            image="core",
            ready=False,
            restart_count=5,
            state=ContainerState(state="running", started_at=NOW - timedelta(seconds=10)),
        ),
    ),
)
CRASH_RUNNING = crash_snapshot(
    crashing=(), pods=(RUNNING_BETWEEN_CRASHES, pod("alphaswarm-core-x"), pod("alphaswarm-core-y"))
)
CP_CRASH = crash_snapshot(
    namespace="alphaswarm-admin",
    deployment_name="alphaswarm-cp",
    deployment=deployment("alphaswarm-cp", namespace="alphaswarm-admin"),
    pods=(crashing_pod("alphaswarm-cp-7d9-abcde", namespace="alphaswarm-admin"),),
    crashing=(),
)
CORE_TWO = crash_snapshot(
    crashing=(),
    pods=(crashing_pod("alphaswarm-core-a"), crashing_pod("alphaswarm-core-b"), pod("c")),
)


@pytest.mark.parametrize(
    ("snap", "scenario", "inconclusive"),
    [
        # A managed Postgres (no pod) is not a Postgres outage: the crash is A, Postgres named.
        (snapshot(stateful=MANAGED_POSTGRES, crashes=(CRASH_ONE,)), Scenario.POD_CRASH, "postgres"),
        (snapshot(stateful=MANAGED_POSTGRES), None, "postgres"),
        # curl missing in the image and no egress from here: not D, and said so.
        (snapshot(jwks=JWKS_UNKNOWN, crashes=(CRASH_ONE,)), Scenario.POD_CRASH, "JWKS"),
        (snapshot(jwks=JWKS_UNKNOWN), None, "JWKS"),
        (snapshot(jwks=JWKS_FINE_IN_LOG), None, ""),
        # The app's own log says jwks_unreachable: D even without curl.
        (
            snapshot(jwks=JWKS_UNKNOWN.model_copy(update={"symptom_lines": ("jwks_unreachable",)})),
            Scenario.JWKS_OUTAGE,
            "",
        ),
        # No ingress controller by that name: not E.
        (snapshot(ingress=NO_CONTROLLER, crashes=(CRASH_ONE,)), Scenario.POD_CRASH, ""),
        # A crash-looping pod seen Running between two crashes is still crash-looping.
        (snapshot(crashes=(CRASH_RUNNING,)), Scenario.POD_CRASH, ""),
        # Several crashing pods with a calm HPA: B's other road, never the HPA patch.
        (snapshot(crashes=(CORE_TWO,)), Scenario.HPA_THRASH, ""),
        # No broker and no redis-cli: the queue is named as not looked at.
        (snapshot(queue=None, queue_not_probed="no broker"), None, "queue"),
    ],
)
def test_only_a_fault_seen_picks_a_branch(
    snap: TriageSnapshot, scenario: Scenario | None, inconclusive: str
) -> None:
    decision = diagnose_incident((), snap, Environment.DEV)
    assert decision.scenario is scenario, decision.reason
    if inconclusive:
        assert any(line.startswith(inconclusive) for line in decision.inconclusive), decision
    if decision.scenario is not None:
        assert not decision.escalate


def test_several_crashes_behind_a_calm_hpa_are_marked_for_b() -> None:
    decision = diagnose_incident((), snapshot(crashes=(CORE_TWO,)), Environment.DEV)
    assert decision.several_crashing and decision.target == "alphaswarm-core"


def test_the_alert_names_the_workload_to_act_on() -> None:
    named = parse_alertmanager(
        {
            "version": "4",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "KubePodCrashLooping",
                        "namespace": "alphaswarm-admin",
                        "pod": "alphaswarm-cp-7d9-abcde",
                    },
                    "startsAt": "2026-11-28T10:00:00Z",
                    "fingerprint": "fp-cp",
                }
            ],
        }
    ).alerts
    decision = diagnose_incident(named, snapshot(crashes=(CRASH_ONE, CP_CRASH)), Environment.DEV)
    assert (decision.scenario, decision.namespace, decision.target) == (
        Scenario.POD_CRASH,
        "alphaswarm-admin",
        "alphaswarm-cp",
    )


def test_production_refuses_the_postgres_pod_delete() -> None:
    down = stateful(postgres_pods=(crashing_pod("postgres-0"),))
    decision = diagnose_incident((), snapshot(stateful=down), Environment.PRODUCTION)
    assert decision.scenario is Scenario.STATEFUL_FAILOVER
    assert "production" in decision.reason
