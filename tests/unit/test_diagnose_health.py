"""diagnose_health is pure: every rule is a row, and so is the alert each finding raises."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasks.adapters.cluster import (
    Condition,
    ContainerState,
    ContainerStatus,
    Deployment,
    EndpointAddress,
    Endpoints,
    OwnerRef,
    Pod,
    PodRow,
    Termination,
)
from tasks.diagnoses.health import (
    AlertName,
    HealthSnapshot,
    NamespaceListing,
    Severity,
    Subject,
    alert_batch,
    diagnose_health,
    fingerprint,
    pod_subject,
)
from tasks.models.alerts import AlertTarget, alert_target, parse_alertmanager

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HASH = "7d9f8b6c5d"
CORE_RS = OwnerRef(kind="ReplicaSet", name=f"alphaswarm-core-{HASH}", uid="rs1", controller=True)
CLIENT_NAME = "alphaswarm-client"
CLIENT = f"alphaswarm/{CLIENT_NAME}"


def pod(**overrides: Any) -> Pod:
    fields: dict[str, Any] = {
        "name": "alphaswarm-core-abc",
        "namespace": "alphaswarm",
        "uid": "u1",
        "phase": "Running",
        "status": "Running",
        "ready_containers": 1,
        "total_containers": 1,
        "restarts": 0,
    }
    return Pod(**{**fields, **overrides})


def core_pod(name: str = f"alphaswarm-core-{HASH}-abcde", **overrides: Any) -> Pod:
    return pod(name=name, owner=CORE_RS, labels={"pod-template-hash": HASH}, **overrides)


def crashing(name: str = f"alphaswarm-core-{HASH}-abcde") -> Pod:
    return core_pod(
        name, waiting_reason="CrashLoopBackOff", status="CrashLoopBackOff", ready_containers=0
    )


def deployment(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "name": "alphaswarm-core",
        "namespace": "alphaswarm",
        "generation": 1,
        "observed_generation": 1,
        "replicas": 3,
        "available_replicas": 3,
        "ready_replicas": 3,
        "updated_replicas": 3,
    }
    return Deployment(**{**fields, **overrides})


def endpoints(
    ready: int, not_ready: int = 0, *, name: str = "alphaswarm-client", pods: tuple[str, ...] = ()
) -> Endpoints:
    addresses = [EndpointAddress(ip=f"10.0.0.{i}", ready=True) for i in range(ready)]
    addresses += [
        EndpointAddress(ip=f"10.0.1.{i}", ready=False, pod=pods[i] if i < len(pods) else None)
        for i in range(not_ready)
    ]
    return Endpoints(name=name, namespace="alphaswarm", addresses=tuple(addresses))


def snapshot(**fields: Any) -> HealthSnapshot:
    return HealthSnapshot(observed_at=NOW, **fields)


CORE = "deployment/alphaswarm/alphaswarm-core"
POD = "pod/alphaswarm/alphaswarm-core-abc"
A = AlertName


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (snapshot(pods=(pod(),)), []),
        (
            snapshot(
                pods=(
                    pod(
                        waiting_reason="CrashLoopBackOff",
                        status="CrashLoopBackOff",
                        ready_containers=0,
                    ),
                )
            ),
            [(Severity.CRITICAL, POD, "CrashLoopBackOff", A.CRASH_LOOPING)],
        ),
        (
            snapshot(pods=(pod(waiting_reason="ImagePullBackOff", ready_containers=0),)),
            [(Severity.CRITICAL, POD, "ImagePullBackOff", A.IMAGE_PULL)],
        ),
        (  # Pending for a minute: being scheduled or pulled, as every new pod is
            snapshot(
                pods=(
                    pod(
                        phase="Pending",
                        status="Pending",
                        ready_containers=0,
                        created_at=NOW - timedelta(minutes=1),
                    ),
                )
            ),
            [(Severity.CRITICAL, POD, "status Pending", None)],
        ),
        (  # Pending for 20 minutes: stuck
            snapshot(
                pods=(
                    pod(
                        phase="Pending",
                        status="Pending",
                        ready_containers=0,
                        created_at=NOW - timedelta(minutes=20),
                    ),
                )
            ),
            [(Severity.CRITICAL, POD, "status Pending", A.POD_NOT_RUNNING)],
        ),
        (  # an evicted pod lingers while its replacement runs: the Deployment tells
            snapshot(pods=(pod(phase="Failed", status="Evicted", ready_containers=0),)),
            [(Severity.CRITICAL, POD, "status Evicted", None)],
        ),
        (
            snapshot(pods=(pod(ready_containers=0),)),
            [(Severity.WARNING, POD, "not ready (0/1)", None)],
        ),
        (snapshot(pods=(pod(restarts=7),)), [(Severity.WARNING, POD, "7 restarts", None)]),
        (snapshot(pods=(pod(phase="Succeeded", status="Completed", ready_containers=0),)), []),
        (snapshot(pods=(pod(deleting=True, status="Terminating", ready_containers=0),)), []),
        (snapshot(deployments={"alphaswarm/alphaswarm-core": deployment()}), []),
        (
            snapshot(deployments={"alphaswarm/alphaswarm-core": None}),
            [(Severity.CRITICAL, CORE, "missing", A.DEPLOYMENT_MISSING)],
        ),
        (
            snapshot(deployments={"alphaswarm/alphaswarm-core": deployment(available_replicas=2)}),
            [(Severity.WARNING, CORE, "2/3 replicas available", A.REPLICAS_UNAVAILABLE)],
        ),
        (  # mid-rollout: short of replicas is expected, a stuck one passes its deadline
            snapshot(
                deployments={
                    "alphaswarm/alphaswarm-core": deployment(
                        available_replicas=2, updated_replicas=1
                    )
                }
            ),
            [(Severity.WARNING, CORE, "2/3 replicas available (rolling out)", None)],
        ),
        (
            snapshot(deployments={"alphaswarm/alphaswarm-core": deployment(available_replicas=0)}),
            [(Severity.CRITICAL, CORE, "0/3 replicas available", A.REPLICAS_UNAVAILABLE)],
        ),
        (
            snapshot(
                deployments={
                    "alphaswarm/alphaswarm-core": deployment(replicas=0, available_replicas=0)
                }
            ),
            [],
        ),
        (
            snapshot(
                deployments={
                    "alphaswarm/alphaswarm-core": deployment(
                        conditions=(
                            Condition(
                                type="Progressing",
                                status="False",
                                reason="ProgressDeadlineExceeded",
                            ),
                        )
                    )
                }
            ),
            [(Severity.CRITICAL, CORE, "rollout exceeded its progress deadline", A.ROLLOUT_STUCK)],
        ),
        (snapshot(endpoints={CLIENT: endpoints(2)}), []),
        (
            snapshot(endpoints={CLIENT: endpoints(0, 2)}, ingress_facing=frozenset({CLIENT})),
            [
                (
                    Severity.CRITICAL,
                    f"endpoints/{CLIENT}",
                    "no ready endpoints (2 not ready): ingress answers 503",
                    A.NO_READY_ENDPOINTS,
                )
            ],
        ),
        (
            snapshot(endpoints={CLIENT: endpoints(0, 2)}),
            [
                (
                    Severity.CRITICAL,
                    f"endpoints/{CLIENT}",
                    "no ready endpoints (2 not ready)",
                    A.NO_READY_ENDPOINTS,
                )
            ],
        ),
        (
            snapshot(endpoints={CLIENT: endpoints(0)}, ingress_facing=frozenset({CLIENT})),
            [
                (
                    Severity.CRITICAL,
                    f"endpoints/{CLIENT}",
                    "no ready endpoints (0 not ready): ingress answers 503",
                    A.NO_READY_ENDPOINTS,
                )
            ],
        ),
        (  # a Service selecting no pod at all, not behind the ingress: scaled to zero, maybe
            snapshot(endpoints={CLIENT: endpoints(0)}),
            [(Severity.WARNING, f"endpoints/{CLIENT}", "no endpoints: selects no pod", None)],
        ),
        (
            snapshot(endpoints={CLIENT: None}),
            [(Severity.CRITICAL, f"endpoints/{CLIENT}", "missing", A.ENDPOINTS_MISSING)],
        ),
    ],
)
def test_diagnose_health(
    seen: HealthSnapshot, expected: list[tuple[str, str, str, AlertName | None]]
) -> None:
    report = diagnose_health(seen)
    assert [(f.severity, f.target, f.problem, f.alert) for f in report.findings] == expected
    assert report.healthy == (not expected)
    assert len(report.alerts) == len({f.alert for f in report.findings if f.alert})


def test_critical_findings_come_first() -> None:
    report = diagnose_health(
        snapshot(
            pods=(pod(name="a", restarts=9), pod(name="b", waiting_reason="CrashLoopBackOff")),
        )
    )
    assert [f.severity for f in report.findings] == [Severity.CRITICAL, Severity.WARNING]


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (core_pod(), Subject(kind="deployment", namespace="alphaswarm", name="alphaswarm-core")),
        (
            pod(
                name="postgres-0",
                owner=OwnerRef(kind="StatefulSet", name="postgres", uid="s1", controller=True),
            ),
            Subject(kind="statefulset", namespace="alphaswarm", name="postgres"),
        ),
        (  # a ReplicaSet of its own, not a Deployment's
            pod(owner=OwnerRef(kind="ReplicaSet", name="standalone", uid="r", controller=True)),
            Subject(kind="pod", namespace="alphaswarm", name="alphaswarm-core-abc"),
        ),
        (pod(), Subject(kind="pod", namespace="alphaswarm", name="alphaswarm-core-abc")),
    ],
)
def test_pod_subject(seen: Pod, expected: Subject) -> None:
    assert pod_subject(seen) == expected


def test_crash_looping_pods_raise_one_alert_for_their_deployment() -> None:
    crashed = (crashing(f"alphaswarm-core-{HASH}-aaaaa"), crashing(f"alphaswarm-core-{HASH}-bbbbb"))
    report = diagnose_health(
        snapshot(
            pods=(*crashed, core_pod(f"alphaswarm-core-{HASH}-ccccc")),
            deployments={"alphaswarm/alphaswarm-core": deployment(available_replicas=1)},
        )
    )
    [alert] = report.alerts
    assert alert.labels == {
        "alertname": "HealthSweepCrashLooping",
        "namespace": "alphaswarm",
        "deployment": "alphaswarm-core",
        "severity": "critical",
        "source": "health-sweep",
    }
    assert alert.firing and alert.starts_at == NOW and alert.ends_at is None
    assert alert.annotations["summary"] == (
        "2 pod(s) of deployment alphaswarm/alphaswarm-core: CrashLoopBackOff "
        f"(alphaswarm-core-{HASH}-aaaaa, alphaswarm-core-{HASH}-bbbbb)"
    )
    expected = hashlib.sha256(
        b"health-sweep|alphaswarm|deployment/alphaswarm-core|HealthSweepCrashLooping"
    ).hexdigest()[:16]
    assert (
        alert.fingerprint
        == expected
        == fingerprint("alphaswarm", "deployment/alphaswarm-core", "HealthSweepCrashLooping")
    )
    assert alert_target(alert) == AlertTarget(namespace="alphaswarm", deployment="alphaswarm-core")
    # the Deployment's own finding stays in the table, its alert is the crash's
    core = next(f for f in report.findings if f.target == CORE)
    assert core.problem == "1/3 replicas available" and core.alert is None


def test_endpoints_behind_crash_looping_pods_raise_no_second_alert() -> None:
    crashed = (crashing(f"alphaswarm-core-{HASH}-aaaaa"), crashing(f"alphaswarm-core-{HASH}-bbbbb"))
    core_eps = endpoints(0, 2, name="alphaswarm-core", pods=tuple(p.name for p in crashed))
    report = diagnose_health(
        snapshot(pods=crashed, endpoints={"alphaswarm/alphaswarm-core": core_eps})
    )
    assert [a.name for a in report.alerts] == ["HealthSweepCrashLooping"]
    assert "endpoints/alphaswarm/alphaswarm-core" in {f.target for f in report.findings}


@pytest.mark.parametrize(
    ("seen", "target"),
    [
        (
            snapshot(endpoints={CLIENT: endpoints(0, 2)}, ingress_facing=frozenset({CLIENT})),
            AlertTarget(namespace="alphaswarm", service="alphaswarm-client"),
        ),
        (
            snapshot(deployments={"alphaswarm/alphaswarm-core": None}),
            AlertTarget(namespace="alphaswarm", deployment="alphaswarm-core"),
        ),
        (
            snapshot(
                pods=(
                    pod(
                        name="redis-master-0",
                        waiting_reason="CrashLoopBackOff",
                        owner=OwnerRef(kind="StatefulSet", name="redis-master", uid="s"),
                    ),
                )
            ),
            AlertTarget(namespace="alphaswarm", statefulset="redis-master"),
        ),
        (
            snapshot(pods=(pod(waiting_reason="ImagePullBackOff"),)),
            AlertTarget(namespace="alphaswarm", pod="alphaswarm-core-abc"),
        ),
    ],
)
def test_alerts_point_alert_target_at_the_workload(
    seen: HealthSnapshot, target: AlertTarget
) -> None:
    [alert] = diagnose_health(seen).alerts
    assert alert_target(alert) == target
    assert alert.labels["source"] == "health-sweep"


def test_starts_at_is_when_the_cluster_says_the_problem_began() -> None:
    down_since = NOW - timedelta(minutes=42)
    unavailable = deployment(
        available_replicas=0,
        conditions=(Condition(type="Available", status="False", last_transition_time=down_since),),
    )
    [alert] = diagnose_health(
        snapshot(deployments={"alphaswarm/alphaswarm-core": unavailable})
    ).alerts
    assert alert.starts_at == down_since


def test_fingerprints_are_stable_across_sweeps_and_distinct_across_problems() -> None:
    def sweep(at: datetime, available: int) -> dict[str, str]:
        report = diagnose_health(
            HealthSnapshot(
                observed_at=at,
                pods=(crashing(),),
                deployments={
                    "alphaswarm/alphaswarm-worker": deployment(
                        name="alphaswarm-worker", available_replicas=available
                    )
                },
                endpoints={CLIENT: endpoints(0, 1)},
            )
        )
        return {a.name: a.fingerprint for a in report.alerts}

    first, later = sweep(NOW, 1), sweep(NOW + timedelta(minutes=5), 2)
    assert first == later
    assert len(set(first.values())) == 3


def test_the_batch_is_an_alertmanager_v4_payload() -> None:
    report = diagnose_health(
        snapshot(
            pods=(crashing(),),
            endpoints={CLIENT: endpoints(0, 1)},
            ingress_facing=frozenset({CLIENT}),
        )
    )
    batch = alert_batch(report.alerts)
    wire = batch.model_dump(mode="json", by_alias=True)
    assert wire["version"] == "4" and wire["status"] == "firing"
    assert wire["commonLabels"] == {
        "namespace": "alphaswarm",
        "severity": "critical",
        "source": "health-sweep",
    }
    assert {a["startsAt"] for a in wire["alerts"]} == {"2026-11-28T12:00:00Z"}
    assert parse_alertmanager(wire) == batch


def test_from_listings_names_what_is_missing_only_in_swept_namespaces() -> None:
    listing = NamespaceListing(
        namespace="alphaswarm",
        pods=(pod(),),
        deployments=(deployment(),),
        endpoints=(endpoints(1),),
    )
    seen = HealthSnapshot.from_listings(
        [listing],
        expected_deployments=[
            ("alphaswarm", "alphaswarm-core"),
            ("alphaswarm", "alphaswarm-worker"),
            ("alphaswarm-admin", "alphaswarm-cp"),
        ],
        ingress_facing=[("alphaswarm", "alphaswarm-client"), ("alphaswarm-admin", "alphaswarm-cp")],
        observed_at=NOW,
    )
    assert seen.deployments == {
        "alphaswarm/alphaswarm-core": deployment(),
        "alphaswarm/alphaswarm-worker": None,
    }
    assert set(seen.endpoints) == {CLIENT}
    assert seen.namespaces == ("alphaswarm",)


def test_readiness_failing_behind_a_service_is_one_endpoints_alert() -> None:
    """Pods running but not ready: the Service's alert (runbook E's door) explains its
    Deployment's missing replicas."""
    rs = OwnerRef(kind="ReplicaSet", name=f"alphaswarm-client-{HASH}", uid="rs2", controller=True)
    unready = tuple(
        pod(
            name=f"alphaswarm-client-{HASH}-{i}",
            owner=rs,
            labels={"pod-template-hash": HASH},
            ready_containers=0,
        )
        for i in "ab"
    )
    report = diagnose_health(
        snapshot(
            pods=unready,
            deployments={
                CLIENT: deployment(name="alphaswarm-client", replicas=2, available_replicas=0)
            },
            endpoints={CLIENT: endpoints(0, 2, pods=tuple(p.name for p in unready))},
            ingress_facing=frozenset({CLIENT}),
        )
    )
    assert [(a.name, alert_target(a)) for a in report.alerts] == [
        ("HealthSweepNoReadyEndpoints", AlertTarget(namespace="alphaswarm", service=CLIENT_NAME))
    ]
    assert {f.target for f in report.findings} >= {f"deployment/{CLIENT}", f"endpoints/{CLIENT}"}


def row(**overrides: Any) -> PodRow:
    """What the sweep lists: a row, no container statuses, its crash summary filled in."""
    fields = {
        "name": f"alphaswarm-core-{HASH}-abcde",
        "namespace": "alphaswarm",
        "uid": "u1",
        "phase": "Running",
        "status": "Running",
        "ready_containers": 1,
        "total_containers": 1,
        "restarts": 3,
        "owner": CORE_RS,
        "labels": {"pod-template-hash": HASH},
    }
    return PodRow(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("seen", "crash_looping"),
    [
        (row(), False),  # restarted long ago, no crash on record
        (row(last_crash_at=NOW - timedelta(minutes=2)), True),  # running between two crashes
        (  # running for longer than a crash-looping run lasts: recovered
            row(
                last_crash_at=NOW - timedelta(minutes=5),
                running_since=NOW - timedelta(minutes=4),
                last_run_seconds=30,
            ),
            False,
        ),
        (row(last_crash_at=NOW - timedelta(minutes=30)), False),  # outside the window
        (row(container_failing=True, status="Error", ready_containers=0), True),  # just died
    ],
    ids=["restarted", "between-crashes", "recovered", "old-crash", "just-died"],
)
def test_rows_are_judged_over_the_crash_window(seen: PodRow, crash_looping: bool) -> None:
    report = diagnose_health(snapshot(pods=(seen,)))
    alerts = {f.alert for f in report.findings}
    assert (A.CRASH_LOOPING in alerts) is crash_looping, report.findings


def test_a_pod_built_from_its_statuses_has_the_same_summary_as_its_row() -> None:
    died = Termination(
        exit_code=1,
        reason="Error",
        started_at=NOW - timedelta(minutes=3),
        finished_at=NOW - timedelta(minutes=2),
    )
    status = ContainerStatus(
        name="app",
        image="app:1",
        ready=True,
        restart_count=3,
        state=ContainerState(state="running", started_at=NOW - timedelta(minutes=1)),
        last_termination=died,
    )
    built = pod(container_statuses=(status,), last_termination=died, restarts=3)
    assert (built.max_restarts, built.last_crash_at, built.running_since) == (
        3,
        died.finished_at,
        NOW - timedelta(minutes=1),
    )
    assert built.last_run_seconds == 60 and not built.container_failing
