"""The controllers, driven tick by tick with `step()`: rollouts as kubectl sees them, scaling,
StatefulSet recreation, endpoints following readiness, HPA thrash and crash-looping pods."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.cluster import SandboxCluster
from sandbox.controllers import Controllers
from sandbox.resources import DEPLOYMENT, ENDPOINT_SLICE, ENDPOINTS, EVENT, HPA, POD, PVC
from sandbox.shapes import is_ready
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
    current = pods(cluster, "alphaswarm-core")
    assert len(current) == 3 and all(is_ready(p) for p in current)
    assert not old & {p["metadata"]["uid"] for p in current}
    assert events(cluster, "Killing") and events(cluster, "ScalingReplicaSet")
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
    assert len(pods(cluster, "alphaswarm-worker")) == 2
    status = deployment(cluster, "alphaswarm-worker")["status"]
    assert (status["replicas"], status["availableReplicas"]) == (2, 2)


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


def test_crash_looping_pod_shape_and_recovery_by_rollout(
    cluster: SandboxCluster, ctl: Controllers
) -> None:
    victim = pods(cluster, "alphaswarm-core")[0]
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    cluster.behaviour.set_pod(uid, crash_looping=True)
    restarts = []
    for _ in range(8):
        ctl.step()
        pod = cluster.store.get(POD, NS, name)
        assert pod is not None
        restarts.append(pod["status"]["containerStatuses"][0]["restartCount"])
    assert restarts == sorted(restarts) and restarts[-1] >= 3
    cs = pod["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["ready"] is False and not is_ready(pod)
    backoff = [e for e in events(cluster, "BackOff") if e["involvedObject"]["uid"] == uid]
    assert len(backoff) == 1 and backoff[0]["count"] >= 3 and backoff[0]["type"] == "Warning"
    previous = cluster.runtime.logs(uid, "app", previous=True) or []
    assert any("RegistryError" in line for line in previous)
    assert parse_all(cluster)

    restart(cluster, "alphaswarm-core")
    assert watch_rollout(cluster, ctl, "alphaswarm-core", ticks=40)[-1] == (
        'deployment "alphaswarm-core" successfully rolled out'
    )
    assert all(is_ready(p) for p in pods(cluster, "alphaswarm-core"))


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
