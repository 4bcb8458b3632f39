"""kubectl's client-side rules, as tables: wire JSON in, what kubectl would print out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tasks.adapters import wire
from tasks.adapters.cluster import Condition, Deployment, Event, ObjectRef, Pod, RolloutState
from tasks.adapters.errors import PermanentError, TransientError, error_for_status
from tasks.adapters.events import parse_rescale_message, rescales, sort_events
from tasks.adapters.kubernetes import rfc3339
from tasks.adapters.pod_order import pick_for_exec, pick_for_logs, sort_for_logs
from tasks.adapters.pod_status import pod_columns
from tasks.adapters.quantities import cpu_millicores, to_bytes
from tasks.adapters.rollout import rollout_status

T0 = "2026-01-10T10:00:00Z"


def running(name: str = "app", *, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "image": "i",
        "imageID": "x",
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": T0}},
    }


def waiting(
    reason: str, name: str = "app", restarts: int = 0, last: dict[str, Any] | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "image": "i",
        "imageID": "x",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
    }
    if last:
        status["lastState"] = {"terminated": last}
    return status


def terminated(name: str = "app", **state: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "i",
        "imageID": "x",
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": state},
    }


def pod_json(
    statuses: list[dict[str, Any]],
    *,
    phase: str = "Running",
    containers: int | None = None,
    init_specs: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p", "namespace": "ns", "uid": "u"}
    if deleting:
        metadata["deletionTimestamp"] = T0
    n = containers if containers is not None else max(len(statuses), 1)
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}"} for i in range(n)]}
    if init_specs:
        spec["initContainers"] = init_specs
    status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses}
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if conditions:
        status["conditions"] = conditions
    if reason:
        status["reason"] = reason
    return {"metadata": metadata, "spec": spec, "status": status}


READY_TRUE = [{"type": "Ready", "status": "True"}]


@pytest.mark.parametrize(
    ("pod", "status", "ready", "restarts"),
    [
        (pod_json([running()]), "Running", "1/1", 0),
        (pod_json([waiting("ContainerCreating")], phase="Pending"), "ContainerCreating", "0/1", 0),
        (
            pod_json(
                [
                    waiting(
                        "CrashLoopBackOff",
                        restarts=7,
                        last={"exitCode": 137, "reason": "OOMKilled"},
                    )
                ],
            ),
            "CrashLoopBackOff",
            "0/1",
            7,
        ),
        (pod_json([terminated(exitCode=137, reason="OOMKilled")]), "OOMKilled", "0/1", 0),
        (pod_json([terminated(exitCode=3)]), "ExitCode:3", "0/1", 0),
        (pod_json([terminated(exitCode=0, signal=9)]), "Signal:9", "0/1", 0),
        # the last container in the list wins: kubectl walks them in reverse
        (
            pod_json([waiting("CrashLoopBackOff", "a"), running("b")]),
            "CrashLoopBackOff",
            "1/2",
            0,
        ),
        (
            pod_json([waiting("ImagePullBackOff", "a"), waiting("CrashLoopBackOff", "b")]),
            "ImagePullBackOff",
            "0/2",
            0,
        ),
        # Completed with a container still running and ready: Running / NotReady
        (
            pod_json(
                [terminated("a", exitCode=0, reason="Completed"), running("b")],
                conditions=READY_TRUE,
            ),
            "Running",
            "1/2",
            0,
        ),
        (
            pod_json([running("b"), terminated("a", exitCode=0, reason="Completed")]),
            "NotReady",
            "1/2",
            0,
        ),
        (pod_json([running()], deleting=True), "Terminating", "1/1", 0),
        (
            pod_json([running()], deleting=True, reason="NodeLost"),
            "Unknown",
            "1/1",
            0,
        ),
        (
            pod_json(
                [terminated(exitCode=0, reason="Completed")], phase="Succeeded", deleting=True
            ),
            "Completed",
            "0/1",
            0,
        ),
        (pod_json([], phase="Failed", reason="Evicted", containers=1), "Evicted", "0/1", 0),
        (
            pod_json(
                [],
                phase="Pending",
                conditions=[
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ],
            ),
            "SchedulingGated",
            "0/1",
            0,
        ),
        # init containers
        (
            pod_json(
                [waiting("PodInitializing")],
                phase="Pending",
                init_specs=[{"name": "init"}],
                init_statuses=[waiting("CrashLoopBackOff", "init", restarts=4)],
            ),
            "Init:CrashLoopBackOff",
            "0/1",
            4,
        ),
        (
            pod_json(
                [waiting("PodInitializing")],
                phase="Pending",
                init_specs=[{"name": "a"}, {"name": "b"}],
                init_statuses=[
                    terminated("a", exitCode=0, reason="Completed"),
                    {**running("b", ready=False)},
                ],
            ),
            "Init:1/2",
            "0/1",
            0,
        ),
        (
            pod_json(
                [waiting("PodInitializing")],
                phase="Pending",
                init_specs=[{"name": "init"}],
                init_statuses=[terminated("init", exitCode=2)],
            ),
            "Init:ExitCode:2",
            "0/1",
            0,
        ),
        # a sidecar (restartable init container) counts in READY and its restarts count
        (
            pod_json(
                [running("app", restarts=1)],
                init_specs=[{"name": "proxy", "restartPolicy": "Always"}],
                init_statuses=[{**running("proxy", restarts=2), "started": True}],
                conditions=[{"type": "Initialized", "status": "True"}],
            ),
            "Running",
            "2/2",
            3,
        ),
    ],
)
def test_status_column(pod: dict[str, Any], status: str, ready: str, restarts: int) -> None:
    columns = pod_columns(pod)
    assert columns.status == status
    assert f"{columns.ready_containers}/{columns.total_containers}" == ready
    assert columns.restarts == restarts


def test_pod_from_wire_keeps_the_diagnosis_facts() -> None:
    raw = {
        "metadata": {
            "name": "api-aaaaa",
            "namespace": "shop",
            "uid": "uid-1",
            "creationTimestamp": T0,
            "labels": {"app": "api"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d", "uid": "rs"}
            ],
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.11",
            "containerStatuses": [
                waiting(
                    "CrashLoopBackOff",
                    restarts=7,
                    last={
                        "exitCode": 137,
                        "reason": "OOMKilled",
                        "finishedAt": "2026-01-10T10:05:00Z",
                    },
                )
            ],
        },
    }
    pod = wire.pod(raw)
    assert (pod.status, pod.ready, pod.restarts, pod.waiting_reason) == (
        "CrashLoopBackOff",
        "0/1",
        7,
        "CrashLoopBackOff",
    )
    assert pod.last_termination is not None
    assert (pod.last_termination.reason, pod.last_termination.exit_code) == ("OOMKilled", 137)
    assert pod.last_termination.finished_at == datetime(2026, 1, 10, 10, 5, tzinfo=UTC)
    assert pod.last_restart_at == pod.last_termination.finished_at
    assert (pod.node, pod.ip, pod.owner and pod.owner.kind) == ("node-1", "10.0.0.11", "ReplicaSet")
    assert pod.default_container == "app"


# ---------------------------------------------------------------------------------------------
# rollout status


def dep(**kw: Any) -> Deployment:
    base: dict[str, Any] = {
        "name": "api",
        "namespace": "shop",
        "generation": 4,
        "observed_generation": 4,
        "replicas": 3,
        "status_replicas": 3,
        "updated_replicas": 3,
        "available_replicas": 3,
    }
    return Deployment(**(base | kw))


DEADLINE = Condition(type="Progressing", status="False", reason="ProgressDeadlineExceeded")
PROGRESSING = Condition(type="Progressing", status="True", reason="ReplicaSetUpdated")


@pytest.mark.parametrize(
    ("deployment", "state", "message"),
    [
        (
            dep(generation=5),
            RolloutState.PENDING,
            "Waiting for deployment spec update to be observed...",
        ),
        (
            dep(conditions=(DEADLINE,), updated_replicas=1),
            RolloutState.FAILED,
            'deployment "api" exceeded its progress deadline',
        ),
        (
            dep(updated_replicas=1, conditions=(PROGRESSING,)),
            RolloutState.PROGRESSING,
            'Waiting for deployment "api" rollout to finish: 1 out of 3 new replicas have been '
            "updated...",
        ),
        (
            dep(status_replicas=4),
            RolloutState.PROGRESSING,
            'Waiting for deployment "api" rollout to finish: 1 old replicas are pending '
            "termination...",
        ),
        (
            dep(available_replicas=2),
            RolloutState.PROGRESSING,
            'Waiting for deployment "api" rollout to finish: 2 of 3 updated replicas are '
            "available...",
        ),
        (dep(), RolloutState.COMPLETE, 'deployment "api" successfully rolled out'),
        # spec.replicas unset: the updated-count check is skipped, as in kubectl
        (
            dep(replicas=None, updated_replicas=0, status_replicas=0, available_replicas=0),
            RolloutState.COMPLETE,
            'deployment "api" successfully rolled out',
        ),
        # a deadline on a not-yet-observed generation is not reported yet
        (
            dep(generation=6, conditions=(DEADLINE,)),
            RolloutState.PENDING,
            "Waiting for deployment spec update to be observed...",
        ),
    ],
)
def test_rollout_status(deployment: Deployment, state: RolloutState, message: str) -> None:
    verdict = rollout_status(deployment)
    assert (verdict.state, verdict.message) == (state, message)
    assert verdict.done is (state is RolloutState.COMPLETE)


# ---------------------------------------------------------------------------------------------
# events


def ev(name: str, **kw: Any) -> Event:
    return Event(name=name, involved=ObjectRef(kind="Pod", name="p"), **kw)


def at(minute: int) -> datetime:
    return datetime(2026, 1, 10, 10, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("events", "order"),
    [
        ([ev("b", last_timestamp=at(5)), ev("a", last_timestamp=at(1))], ["a", "b"]),
        # nulls first, in server order
        (
            [ev("x", last_timestamp=at(1)), ev("n1"), ev("n2")],
            ["n1", "n2", "x"],
        ),
        # fallbacks: series.lastObservedTime, eventTime, firstTimestamp, creationTimestamp
        (
            [
                ev("last", last_timestamp=at(9)),
                ev("evtime", event_time=at(2)),
                ev("series", event_time=at(1), series_last_observed=at(7)),
                ev("first", first_timestamp=at(3)),
                ev("created", created_at=at(4)),
            ],
            ["evtime", "first", "created", "series", "last"],
        ),
        # lastTimestamp wins over a later eventTime
        (
            [ev("a", last_timestamp=at(8), event_time=at(1)), ev("b", event_time=at(5))],
            ["b", "a"],
        ),
    ],
)
def test_event_order(events: list[Event], order: list[str]) -> None:
    assert [e.name for e in sort_events(events)] == order


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        (
            "New size: 6; reason: cpu resource utilization (percentage of request) above target",
            (6, "cpu resource utilization (percentage of request) above target"),
        ),
        ("New size: 3; reason: All metrics below target", (3, "All metrics below target")),
        (
            "(combined from similar events): New size: 10; reason: memory resource above target",
            (10, "memory resource above target"),
        ),
        (
            "New size: 0; reason: Current number of replicas below Spec.MinReplicas",
            (0, "Current number of replicas below Spec.MinReplicas"),
        ),
        ("the HPA controller was able to update the target scale to 6", None),
        ("New size: x; reason: y", None),
    ],
)
def test_parse_rescale_message(message: str, parsed: tuple[int, str] | None) -> None:
    assert parse_rescale_message(message) == parsed


def test_rescale_history_keeps_counts_and_order() -> None:
    events = [
        ev(
            "up",
            reason="SuccessfulRescale",
            message="New size: 6; reason: cpu resource utilization above target",
            count=9,
            first_timestamp=at(0),
            last_timestamp=at(9),
        ),
        ev(
            "down",
            reason="SuccessfulRescale",
            message="(combined from similar events): New size: 3; reason: All metrics below target",
            count=8,
            last_timestamp=at(8),
        ),
        ev(
            "other", reason="FailedGetScale", message="New size: 1; reason: x", last_timestamp=at(7)
        ),
    ]
    history = rescales(events)
    assert [(r.new_size, r.count, r.last_timestamp) for r in history] == [
        (3, 8, at(8)),
        (6, 9, at(9)),
    ]
    assert history[0].reason == "All metrics below target"


# ---------------------------------------------------------------------------------------------
# quantities


@pytest.mark.parametrize(
    ("quantity", "millicores"),
    [
        ("187543210n", 188),
        ("912m", 912),
        ("1", 1000),
        ("2.5", 2500),
        ("1n", 1),
        ("0", 0),
        ("250000u", 250),
    ],
)
def test_cpu_millicores(quantity: str, millicores: int) -> None:
    assert cpu_millicores(quantity) == millicores


@pytest.mark.parametrize(
    ("quantity", "size"),
    [
        ("301Mi", 315621376),
        ("1Ki", 1024),
        ("1k", 1000),
        ("10Gi", 10 * 1024**3),
        ("12345", 12345),
        ("0.5Ki", 512),
        ("1M", 1_000_000),
    ],
)
def test_bytes(quantity: str, size: int) -> None:
    assert to_bytes(quantity) == size


def test_a_bad_quantity_is_permanent() -> None:
    with pytest.raises(PermanentError):
        cpu_millicores("lots")


# ---------------------------------------------------------------------------------------------
# pod pick order (kubectl logs / exec deploy/X)


def pod(name: str, **kw: Any) -> Pod:
    base: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": name,
        "phase": "Running",
        "status": "Running",
        "ready_containers": 1,
        "total_containers": 1,
        "restarts": 0,
        "node": "node-1",
        "created_at": at(0),
        "ready_since": at(1),
    }
    return Pod(**(base | kw))


def restarted(count: int) -> Any:
    status = wire.container_status(running(restarts=count))
    return (status,)


@pytest.mark.parametrize(
    ("pods", "logs_pick", "exec_pick"),
    [
        ([pod("unassigned", node=None), pod("assigned")], "assigned", "assigned"),
        ([pod("pending", phase="Pending"), pod("running")], "running", "running"),
        ([pod("unknown", phase="Unknown"), pod("pending", phase="Pending")], "unknown", "unknown"),
        (
            [pod("notready", ready_containers=0, ready_since=None), pod("ready")],
            "ready",
            "ready",
        ),
        ([pod("young", ready_since=at(5)), pod("old", ready_since=at(1))], "old", "old"),
        # logs prefer the pod with more restarts; exec the one with fewer
        (
            [
                pod("calm", container_statuses=restarted(0)),
                pod("crashy", container_statuses=restarted(5)),
            ],
            "crashy",
            "calm",
        ),
        ([pod("new", created_at=at(9)), pod("older", created_at=at(2))], "older", "older"),
        ([], None, None),
    ],
)
def test_pod_pick(pods: list[Pod], logs_pick: str | None, exec_pick: str | None) -> None:
    chosen_for_logs = pick_for_logs(pods)
    chosen_for_exec = pick_for_exec(pods)
    assert (chosen_for_logs.name if chosen_for_logs else None) == logs_pick
    assert (chosen_for_exec.name if chosen_for_exec else None) == exec_pick


def test_logs_order_is_total() -> None:
    pods = [
        pod("c", node=None),
        pod("b", phase="Pending"),
        pod("a"),
        pod("d", ready_containers=0, ready_since=None),
    ]
    assert [p.name for p in sort_for_logs(pods)] == ["a", "d", "b", "c"]


# ---------------------------------------------------------------------------------------------
# error sorting and timestamps


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, TransientError),
        (0, TransientError),
        (500, TransientError),
        (503, TransientError),
        (504, TransientError),
        (409, TransientError),
        (429, TransientError),
        (400, PermanentError),
        (401, PermanentError),
        (403, PermanentError),
        (404, PermanentError),
        (422, PermanentError),
    ],
)
def test_errors_are_sorted(status: int | None, kind: type[Exception]) -> None:
    error = error_for_status(status, "m")
    assert type(error) is kind
    assert error.status == (status or None)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 28, 9, 43, 39, 123456, tzinfo=UTC), "2026-11-28T09:43:39Z"),
        (
            datetime(2026, 11, 28, 11, 43, 39, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-28T11:43:39+02:00",
        ),
        (
            datetime(2026, 11, 28, 4, 13, 39, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
            "2026-11-28T04:13:39-05:30",
        ),
    ],
)
def test_restarted_at_is_go_rfc3339(moment: datetime, text: str) -> None:
    assert rfc3339(moment) == text
