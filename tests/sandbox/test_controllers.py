"""The controllers, driven tick by tick with `step()`: rollouts as kubectl sees them, scaling,
StatefulSet recreation, endpoints following readiness, HPA thrash and crash-looping pods."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.behaviour import CrashCycle
from sandbox.cluster import SandboxCluster
from sandbox.controllers import Controllers
from sandbox.resources import DEPLOYMENT, ENDPOINT_SLICE, ENDPOINTS, EVENT, HPA, POD, PVC
from sandbox.shapes import is_ready, is_terminating
from sandbox.tables import table
from sandbox.termination import grace_seconds, mark_terminating, termination_ticks
from sandbox.topology import seed
from tests.sandbox.test_topology import parse_all

NS = "alphaswarm"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def cluster() -> SandboxCluster:
    c = SandboxCluster()
    seed(c)
    return c


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctl(cluster: SandboxCluster, clock: FakeClock) -> Controllers:
    return Controllers(cluster, clock=clock)


def rollout_status(d: dict[str, Any]) -> str:
    """kubectl's DeploymentStatusViewer.Status, verbatim (wire reference §1.6)."""
    name, spec, status = d["metadata"]["name"], d["spec"], d.get("status") or {}
    if d["metadata"]["generation"] > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed..."
    for cond in status.get("conditions") or []:
        if cond["type"] == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return f'error: deployment "{name}" exceeded its progress deadline'
    updated, replicas = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    wait = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < spec["replicas"]:
        return wait + f"{updated} out of {spec['replicas']} new replicas have been updated..."
    if replicas > updated:
        return wait + f"{replicas - updated} old replicas are pending termination..."
    if available < updated:
        return wait + f"{available} of {updated} updated replicas are available..."
    return f'deployment "{name}" successfully rolled out'


def deployment(cluster: SandboxCluster, name: str) -> dict[str, Any]:
    d = cluster.store.get(DEPLOYMENT, NS, name)
    assert d is not None
    return d


def watch_rollout(cluster: SandboxCluster, ctl: Controllers, name: str, ticks: int) -> list[str]:
    """Rollout status after each tick, repeats collapsed, as `kubectl rollout status` prints."""
    seen = [rollout_status(deployment(cluster, name))]
    for _ in range(ticks):
        ctl.step()
        message = rollout_status(deployment(cluster, name))
        if message != seen[-1]:
            seen.append(message)
        if message.startswith("deployment") or message.startswith("error"):
            break
    return seen


def restart(cluster: SandboxCluster, name: str) -> None:
    def annotate(d: dict[str, Any]) -> None:
        annotations = d["spec"]["template"]["metadata"].setdefault("annotations", {})
        annotations["kubectl.kubernetes.io/restartedAt"] = "2026-11-28T09:43:39Z"

    cluster.store.update(DEPLOYMENT, NS, name, annotate)


def pods(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return cluster.store.list(POD, NS, labels=f"app={app}")[0]


def events(cluster: SandboxCluster, reason: str) -> list[dict[str, Any]]:
    return cluster.store.list(EVENT, NS, fields=f"reason={reason}")[0]


def test_rollout_restart_converges_with_kubectls_messages(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    old = {p["metadata"]["uid"] for p in pods(cluster, "alphaswarm-core")}
    restart(cluster, "alphaswarm-core")
    seen = watch_rollout(cluster, ctl, "alphaswarm-core", ticks=40)
    wait = 'Waiting for deployment "alphaswarm-core" rollout to finish: '
    assert seen == [
        "Waiting for deployment spec update to be observed...",
        wait + "1 out of 3 new replicas have been updated...",
        wait + "2 out of 3 new replicas have been updated...",
        wait + "1 old replicas are pending termination...",
        'deployment "alphaswarm-core" successfully rolled out',
    ]
    d = deployment(cluster, "alphaswarm-core")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert {c["type"]: c["reason"] for c in d["status"]["conditions"]}["Progressing"] == (
        "NewReplicaSetAvailable"
    )
    # Rolled out as a real controller counts it: the last old pod may still be Terminating.
    current = [p for p in pods(cluster, "alphaswarm-core") if not is_terminating(p)]
    assert len(current) == 3 and all(is_ready(p) for p in current)
    assert not old & {p["metadata"]["uid"] for p in current}
    assert events(cluster, "Killing") and events(cluster, "ScalingReplicaSet")
    for _ in range(3):
        ctl.step()
    assert {p["metadata"]["uid"] for p in pods(cluster, "alphaswarm-core")} == {
        p["metadata"]["uid"] for p in current
    }
    assert parse_all(cluster)


def test_rollout_takes_about_three_ticks_per_replica(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    restart(cluster, "alphaswarm-client")
    ticks = 0
    while not rollout_status(deployment(cluster, "alphaswarm-client")).startswith("deployment"):
        ctl.step()
        ticks += 1
        assert ticks <= 7  # 3 per replica (Pending, Running, Ready), 1 for the last old pod


def test_scale_up_and_down(cluster: SandboxCluster, ctl: Controllers) -> None:
    cluster.store.update(
        DEPLOYMENT, NS, "alphaswarm-worker", lambda d: d["spec"].update(replicas=8)
    )
    for _ in range(4):
        ctl.step()
    workers = pods(cluster, "alphaswarm-worker")
    assert len(workers) == 8 and all(is_ready(p) for p in workers)
    assert deployment(cluster, "alphaswarm-worker")["status"]["readyReplicas"] == 8
    cluster.store.update(
        DEPLOYMENT, NS, "alphaswarm-worker", lambda d: d["spec"].update(replicas=2)
    )
    for _ in range(2):
        ctl.step()
    # The six surplus pods are Terminating, no longer replicas; a few ticks later they are gone.
    status = deployment(cluster, "alphaswarm-worker")["status"]
    assert (status["replicas"], status["availableReplicas"]) == (2, 2)
    assert sum(not is_terminating(p) for p in pods(cluster, "alphaswarm-worker")) == 2
    for _ in range(3):
        ctl.step()
    assert len(pods(cluster, "alphaswarm-worker")) == 2


def test_paused_deployment_is_left_alone(cluster: SandboxCluster, ctl: Controllers) -> None:
    cluster.store.update(
        DEPLOYMENT, NS, "alphaswarm-client", lambda d: d["spec"].update(paused=True)
    )
    restart(cluster, "alphaswarm-client")
    ctl.step()
    ctl.step()
    assert rollout_status(deployment(cluster, "alphaswarm-client")).startswith(
        "Waiting for deployment spec"
    )


def test_deleted_statefulset_pod_returns_with_new_uid_and_same_claim(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    before = cluster.store.get(POD, NS, "redis-master-0")
    assert before is not None
    pvc_before = cluster.store.get(PVC, NS, "redis-data-redis-master-0")
    cluster.store.delete(POD, NS, "redis-master-0")
    ctl.step()
    after = cluster.store.get(POD, NS, "redis-master-0")
    assert after is not None and after["status"]["phase"] == "Pending"
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    for _ in range(3):
        ctl.step()
    after = cluster.store.get(POD, NS, "redis-master-0")
    assert after is not None and is_ready(after)
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    claims = [v["persistentVolumeClaim"]["claimName"] for v in after["spec"]["volumes"]]
    assert claims == ["redis-data-redis-master-0"]
    assert cluster.store.get(PVC, NS, "redis-data-redis-master-0") is pvc_before
    log = cluster.runtime.logs(after["metadata"]["uid"], "redis", previous=False) or []
    assert any("DB loaded from append only file" in line for line in log)
    assert cluster.runtime.logs(after["metadata"]["uid"], "redis", previous=True) is None


def test_endpoints_follow_readiness(cluster: SandboxCluster, ctl: Controllers) -> None:
    cluster.behaviour.set_workload(NS, "alphaswarm-client", ready=False)
    ctl.step()
    subsets = cluster.store.get(ENDPOINTS, NS, "alphaswarm-client")["subsets"]  # type: ignore[index]
    assert "addresses" not in subsets[0] and len(subsets[0]["notReadyAddresses"]) == 2
    (eps,) = cluster.store.list(
        ENDPOINT_SLICE, NS, labels="kubernetes.io/service-name=alphaswarm-client"
    )[0]
    assert [e["conditions"]["ready"] for e in eps["endpoints"]] == [False, False]
    assert events(cluster, "Unhealthy")
    cluster.behaviour.set_workload(NS, "alphaswarm-client", ready=True)
    ctl.step()
    subsets = cluster.store.get(ENDPOINTS, NS, "alphaswarm-client")["subsets"]  # type: ignore[index]
    assert len(subsets[0]["addresses"]) == 2 and "notReadyAddresses" not in subsets[0]
    assert subsets[0]["ports"] == [{"name": "http", "port": 3000, "protocol": "TCP"}]


def rescale_events(cluster: SandboxCluster) -> dict[str, int]:
    return {e["message"]: e["count"] for e in events(cluster, "SuccessfulRescale")}


def test_hpa_flap_alternates_aggregated_events_until_the_window_is_widened(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    cluster.behaviour.hpa_flap(NS, "alphaswarm-core", 3, 6)
    sizes = []
    for _ in range(6):
        ctl.step()
        sizes.append(deployment(cluster, "alphaswarm-core")["spec"]["replicas"])
    assert sizes == [6, 3, 6, 3, 6, 3]
    up = "New size: 6; reason: cpu resource utilization (percentage of request) above target"
    down = "New size: 3; reason: All metrics below target"
    counts = rescale_events(cluster)
    assert counts[up] == 3 and counts[down] == 4  # the seeded scale-down plus three
    hpa = cluster.store.get(HPA, NS, "alphaswarm-core")
    assert hpa is not None and hpa["status"]["desiredReplicas"] == 3
    assert {c["type"]: c["reason"] for c in hpa["status"]["conditions"]}["AbleToScale"] == (
        "SucceededRescale"
    )

    def widen(h: dict[str, Any]) -> None:
        h["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = 300

    cluster.store.update(HPA, NS, "alphaswarm-core", widen)
    for _ in range(5):
        ctl.step()
    assert deployment(cluster, "alphaswarm-core")["spec"]["replicas"] == 3
    assert rescale_events(cluster) == counts
    assert parse_all(cluster)


def container(cluster: SandboxCluster, name: str) -> dict[str, Any]:
    pod = cluster.store.get(POD, NS, name)
    assert pod is not None
    return dict(pod["status"]["containerStatuses"][0])


def kubectl_status(cluster: SandboxCluster, name: str) -> str:
    """The STATUS column `kubectl get pods` prints for the pod (the server-side Table)."""
    pod = cluster.store.get(POD, NS, name)
    assert pod is not None
    return str(table(POD.key, [pod], "1")["rows"][0]["cells"][2])


def watch_pod(cluster: SandboxCluster, ctl: Controllers, name: str, ticks: int) -> list[str]:
    """STATUS and restarts after each tick, e.g. `Error/0`, `CrashLoopBackOff/0`, `Running/1`."""
    seen = []
    for _ in range(ticks):
        ctl.step()
        seen.append(f"{kubectl_status(cluster, name)}/{container(cluster, name)['restartCount']}")
    return seen


def test_a_crash_looping_container_runs_dies_and_backs_off_like_a_kubelets(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    victim = pods(cluster, "alphaswarm-core")[0]
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    cluster.behaviour.set_pod(uid, crash_looping=True)
    seen = watch_pod(cluster, ctl, name, 23)
    # Killed at once, then: Error for a tick, back-off of 1, 2, 4, 8 ticks, a tick Running.
    assert seen == [
        "Error/0",
        *["CrashLoopBackOff/0"] * 1,
        "Running/1",
        "Error/1",
        *["CrashLoopBackOff/1"] * 2,
        "Running/2",
        "Error/2",
        *["CrashLoopBackOff/2"] * 4,
        "Running/3",
        "Error/3",
        *["CrashLoopBackOff/3"] * 8,
        "Running/4",
    ]
    running = container(cluster, name)
    assert running["state"]["running"]["startedAt"] and running["ready"] is False  # has a probe
    last = running["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert last["startedAt"] <= last["finishedAt"] <= running["state"]["running"]["startedAt"]
    ctl.step()
    dead = container(cluster, name)["state"]["terminated"]
    assert dead["containerID"] == running["containerID"] != last["containerID"]
    ctl.step()
    waiting = container(cluster, name)["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"
    assert waiting["message"].startswith("back-off 2m40s restarting failed container=app")
    backoff = [e for e in events(cluster, "BackOff") if e["involvedObject"]["uid"] == uid]
    assert len(backoff) == 1 and backoff[0]["count"] == 5 and backoff[0]["type"] == "Warning"
    started = [e for e in events(cluster, "Started") if e["involvedObject"]["uid"] == uid]
    assert started[0]["count"] == 1 + 4  # the seeded start, then one per restart
    previous = cluster.runtime.logs(uid, "app", previous=True) or []
    assert any("RegistryError" in line for line in previous)
    assert parse_all(cluster)


def test_without_a_readiness_probe_the_container_is_ready_while_it_runs(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    cluster.behaviour.set_workload(NS, "redis-master", crash_looping=True)
    assert watch_pod(cluster, ctl, "redis-master-0", 3) == [
        "Error/0",
        "CrashLoopBackOff/0",
        "Running/1",
    ]
    pod = cluster.store.get(POD, NS, "redis-master-0")
    assert pod is not None and is_ready(pod)  # the kubelet's view; it dies on the next tick
    assert not cluster.behaviour.serving(pod)  # what a client of Redis sees


def test_running_between_crashes_keeps_the_pod_running_most_of_the_time(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    cluster.behaviour.crash_cycle = CrashCycle(run_ticks=20, max_backoff_ticks=2)
    victim = pods(cluster, "alphaswarm-core")[0]
    cluster.behaviour.set_pod(victim["metadata"]["uid"], crash_looping=True)
    seen = watch_pod(cluster, ctl, victim["metadata"]["name"], 70)
    statuses = [s.split("/")[0] for s in seen]
    assert statuses.count("Running") >= 55
    assert {"Error", "CrashLoopBackOff"} <= set(statuses)
    assert [int(s.split("/")[1]) for s in seen][-1] == 3


def test_a_fixed_container_waits_out_its_back_off_then_stays_up(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    victim = pods(cluster, "alphaswarm-core")[0]
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    cluster.behaviour.set_pod(uid, crash_looping=True)
    watch_pod(cluster, ctl, name, 2)
    cluster.behaviour.forget_pod(uid)
    assert watch_pod(cluster, ctl, name, 4) == ["Running/1"] * 4
    pod = cluster.store.get(POD, NS, name)
    assert pod is not None and is_ready(pod)
    log = cluster.runtime.logs(uid, "app", previous=False) or []
    assert any("Application startup complete" in line for line in log)


def test_crash_looping_pod_recovers_by_rollout(cluster: SandboxCluster, ctl: Controllers) -> None:
    victim = pods(cluster, "alphaswarm-core")[0]
    cluster.behaviour.set_pod(victim["metadata"]["uid"], crash_looping=True)
    for _ in range(4):
        ctl.step()
    restart(cluster, "alphaswarm-core")
    assert watch_rollout(cluster, ctl, "alphaswarm-core", ticks=40)[-1] == (
        'deployment "alphaswarm-core" successfully rolled out'
    )
    assert all(is_ready(p) for p in pods(cluster, "alphaswarm-core") if not is_terminating(p))


def test_a_template_that_still_crashes_exceeds_the_progress_deadline(
    cluster: SandboxCluster, ctl: Controllers, clock: FakeClock
) -> None:
    cluster.behaviour.set_workload(NS, "alphaswarm-core", crash_looping=True)

    def restart_with_short_deadline(d: dict[str, Any]) -> None:
        d["spec"]["progressDeadlineSeconds"] = 30
        d["spec"]["template"]["metadata"].setdefault("annotations", {})["x"] = "1"

    cluster.store.update(DEPLOYMENT, NS, "alphaswarm-core", restart_with_short_deadline)
    seen = watch_rollout(cluster, ctl, "alphaswarm-core", ticks=60)
    assert seen[-1] == 'error: deployment "alphaswarm-core" exceeded its progress deadline'
    d = deployment(cluster, "alphaswarm-core")
    progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False"


def test_a_deleted_deployment_pod_terminates_while_its_replacement_starts(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    victim = pods(cluster, "alphaswarm-client")[0]
    name = victim["metadata"]["name"]
    cluster.store.update(POD, NS, name, lambda p: mark_terminating(p, grace_seconds(p), 0))
    ctl.step()
    listed = {p["metadata"]["name"]: p for p in pods(cluster, "alphaswarm-client")}
    assert len(listed) == 3 and is_terminating(listed[name]) and not is_ready(listed[name])
    assert listed[name]["metadata"]["deletionGracePeriodSeconds"] == 30
    subsets = cluster.store.get(ENDPOINTS, NS, "alphaswarm-client")["subsets"]  # type: ignore[index]
    ips = [
        a["ip"] for s in subsets for a in s.get("addresses", []) + s.get("notReadyAddresses", [])
    ]
    assert victim["status"]["podIP"] not in ips  # a terminating pod is never an endpoint
    killing = [e for e in events(cluster, "Killing") if e["involvedObject"]["name"] == name]
    assert [e["message"] for e in killing] == ["Stopping container app"]
    assert not [e for e in events(cluster, "Unhealthy") if e["involvedObject"]["name"] == name]
    ctl.step()
    ctl.step()
    assert name not in {p["metadata"]["name"] for p in pods(cluster, "alphaswarm-client")}
    assert sum(is_ready(p) for p in pods(cluster, "alphaswarm-client")) == 2


def test_termination_ticks_follow_the_grace_period() -> None:
    assert [termination_ticks(g) for g in (0, 5, 10, 15, 30, 600)] == [2, 2, 2, 2, 3, 3]
