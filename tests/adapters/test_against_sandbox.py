"""The Kubernetes adapter against the sandbox API server, over loopback HTTP.

The same client code that talks to a real cluster runs here unchanged; the journal shows what
reached the server, so each test asserts both the typed answer and the REST call behind it
(query parameters, patch content types, dryRun=All and that a dry run changed nothing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from pydantic import SecretStr

from sandbox.auth0 import JWKS_URL
from sandbox.journal import Fault
from sandbox.server import SandboxServer
from tasks.adapters.cluster import RESTARTED_AT_ANNOTATION, Pod, RolloutState
from tasks.adapters.errors import PermanentError, TransientError
from tasks.adapters.exec_commands import ExecCommand, curl_jwks, redis_cli, runs_list
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.settings import KubeAccess

NS = "alphaswarm"
ADMIN = "alphaswarm-admin"
CORE = "alphaswarm-core"
WORKER = "alphaswarm-worker"
CLIENT = "alphaswarm-client"
CP = "alphaswarm-cp"

T = TypeVar("T")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        yield srv


@pytest.fixture
def kubeconfig(sandbox: SandboxServer, tmp_path: Path) -> Path:
    return sandbox.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[KubernetesCluster]:
    with KubernetesCluster(KubeAccess(kubeconfig=kubeconfig, request_timeout_seconds=5)) as c:
        yield c


@pytest.fixture
def raw_api(kubeconfig: Path) -> Iterator[Any]:
    """The bare client, for arranging a situation the adapter has no verb for."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


def eventually(sandbox: SandboxServer, probe: Callable[[], T | None], timeout: float = 15) -> T:
    """Step the controllers until `probe` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        sandbox.controllers.step()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s (last: {value!r})")
        time.sleep(0.05)


def queries(sandbox: SandboxServer, method: str, path: str) -> list[dict[str, list[str]]]:
    return [r.query for r in sandbox.cluster.journal.requests(method, path)]


def running_pod(cluster: KubernetesCluster, sandbox: SandboxServer, selector: str) -> Pod:
    def probe() -> Pod | None:
        return next(
            (p for p in cluster.pods(NS, selector) if p.status == "Running" and p.is_ready), None
        )

    return eventually(sandbox, probe)


# ---------------------------------------------------------------------------------------------
# access


def test_kubeconfig_from_environment_is_read_at_call_time(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with KubernetesCluster(KubeAccess()) as c:
        assert c.pods(NS)


def test_explicit_context_and_a_missing_one(kubeconfig: Path) -> None:
    with KubernetesCluster(KubeAccess(kubeconfig=kubeconfig, context="sandbox")) as c:
        assert c.pods(NS)
    with pytest.raises(PermanentError):
        KubernetesCluster(KubeAccess(kubeconfig=kubeconfig, context="nope"))


def test_a_proxy_in_the_environment_does_not_hijack_loopback(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with KubernetesCluster(KubeAccess(kubeconfig=kubeconfig, request_timeout_seconds=3)) as c:
        assert c.pods(NS)


# ---------------------------------------------------------------------------------------------
# pods


def test_pods_in_both_namespaces(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    pods = cluster.pods(NS)
    names = {p.name for p in pods}
    assert "postgres-0" in names and "redis-master-0" in names
    for pod in pods:
        assert pod.uid and pod.phase and pod.status and pod.created_at is not None
        assert pod.total_containers >= 1 and pod.ready.count("/") == 1
    assert any(p.owner is not None and p.owner.kind == "ReplicaSet" for p in pods)
    scheduled = [p for p in pods if p.phase == "Running"]
    assert scheduled and all(p.node and p.ip for p in scheduled)
    admin = cluster.pods(ADMIN)
    assert any(p.labels.get("app") == CP for p in admin)


def test_pods_by_selector(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    core = cluster.pods(NS, f"app={CORE}")
    assert core and all(p.labels["app"] == CORE for p in core)
    assert {"labelSelector": [f"app={CORE}"]}.items() <= queries(
        sandbox, "GET", f"/api/v1/namespaces/{NS}/pods$"
    )[-1].items()


def test_a_crashing_pod_reads_as_kubectl_prints_it(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    victim = running_pod(cluster, sandbox, f"app={CORE}")
    sandbox.cluster.behaviour.set_pod(
        victim.uid, crash_looping=True, crash_log=("boom: out of memory",), exit_code=137
    )

    def crashed() -> Pod | None:
        pod = cluster.pod(NS, victim.name)
        # A real kubelet backs off from the second failure: wait for a back-off after a restart.
        looping = pod is not None and pod.status == "CrashLoopBackOff" and pod.restarts >= 1
        return pod if looping else None

    pod = eventually(sandbox, crashed)
    assert pod.waiting_reason == "CrashLoopBackOff"
    assert pod.restarts >= 1
    assert pod.last_termination is not None and pod.last_termination.exit_code == 137
    assert pod.last_termination.finished_at is not None
    previous = cluster.pod_logs(NS, pod.name, previous=True)
    assert previous is not None and "boom: out of memory" in previous
    assert queries(sandbox, "GET", f"/pods/{pod.name}/log$")[-1]["previous"] == ["true"]


def test_pod_and_missing_pod(cluster: KubernetesCluster) -> None:
    pod = cluster.pod(NS, "postgres-0")
    assert pod is not None and pod.labels.get("app") == "postgres"
    assert cluster.pod(NS, "no-such-pod") is None
    assert cluster.describe_pod(NS, "no-such-pod") is None


def test_describe_pod_lists_its_own_events(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    pod = running_pod(cluster, sandbox, f"app={CORE}")
    described = cluster.describe_pod(NS, pod.name)
    assert described is not None
    assert {c.type for c in described.conditions} >= {"Ready", "PodScheduled"}
    assert described.containers and described.containers[0].state.state == "running"
    assert described.events, "the scheduler and kubelet write events for every pod"
    assert all(e.involved.uid == pod.uid for e in described.events)
    seen = [e.last_seen for e in described.events if e.last_seen is not None]
    assert seen == sorted(seen)
    selector = queries(sandbox, "GET", f"/api/v1/namespaces/{NS}/events$")[-1]["fieldSelector"]
    assert set(selector[0].split(",")) == {
        f"involvedObject.name={pod.name}",
        f"involvedObject.namespace={NS}",
        f"involvedObject.uid={pod.uid}",
    }


def test_logs_with_tail_and_a_missing_previous(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    pod = running_pod(cluster, sandbox, f"app={CORE}")
    text = cluster.pod_logs(NS, pod.name, tail=3)
    assert text is not None and 0 < len(text.splitlines()) <= 3
    assert queries(sandbox, "GET", f"/pods/{pod.name}/log$")[-1]["tailLines"] == ["3"]
    # never restarted: the server's 400 "previous terminated container ... not found" is None
    assert cluster.pod_logs(NS, pod.name, previous=True) is None
    assert cluster.pod_logs(NS, "no-such-pod") is None


def test_deployment_logs_pick_a_pod_like_kubectl(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    running_pod(cluster, sandbox, f"app={WORKER}")
    logs = cluster.deployment_logs(NS, WORKER, tail=20)
    assert logs is not None and logs.text is not None
    pods = {p.name: p for p in cluster.pods(NS, f"app={WORKER}")}
    assert logs.pod in pods and logs.pods_found == len(pods)
    assert pods[logs.pod].node is not None
    assert cluster.deployment_logs(NS, "no-such-deployment") is None
    admin_logs = cluster.deployment_logs(ADMIN, CP, tail=200)
    assert admin_logs is not None and admin_logs.pod.startswith(CP)


def test_events_sorted_by_last_timestamp(cluster: KubernetesCluster) -> None:
    events = cluster.events(NS)
    assert events
    seen = [e.last_seen for e in events]
    dated = [s for s in seen if s is not None]
    assert seen[: len(seen) - len(dated)] == [None] * (len(seen) - len(dated))
    assert dated == sorted(dated)
    warnings = cluster.events(NS, "type=Warning")
    assert all(e.type == "Warning" for e in warnings)


def test_top_pods_sorted(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    running_pod(cluster, sandbox, f"app={CORE}")
    by_cpu = cluster.top_pods(NS, sort_by="cpu")
    assert by_cpu and all(u.cpu_millicores >= 0 and u.memory_bytes > 0 for u in by_cpu)
    assert [u.cpu_millicores for u in by_cpu] == sorted(
        (u.cpu_millicores for u in by_cpu), reverse=True
    )
    by_memory = cluster.top_pods(NS, sort_by="memory")
    assert [u.memory_bytes for u in by_memory] == sorted(
        (u.memory_bytes for u in by_memory), reverse=True
    )
    assert {u.name for u in by_cpu} <= {p.name for p in cluster.pods(NS)}
    assert sandbox.cluster.journal.requests(
        "GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods"
    )


# ---------------------------------------------------------------------------------------------
# deployments: read, restart, rollout status


def test_deployment_read(cluster: KubernetesCluster) -> None:
    core = cluster.deployment(NS, CORE)
    assert core is not None
    assert core.replicas is not None and core.generation >= 1
    assert core.selector.render() and core.containers and core.containers[0].image
    assert core.condition("Available") is not None
    assert cluster.deployment(NS, "no-such-deployment") is None
    assert cluster.deployment(ADMIN, CP) is not None


def test_rollout_restart_dry_run_changes_nothing(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    before = cluster.deployment(NS, CORE)
    assert before is not None
    result = cluster.rollout_restart(NS, CORE, dry_run=True)
    assert result.dry_run and result.previous_generation == before.generation
    patch = sandbox.cluster.journal.requests("PATCH", f"/deployments/{CORE}$")[-1]
    assert patch.query["dryRun"] == ["All"]
    assert patch.query["fieldManager"] == ["kubectl-rollout"]
    assert patch.content_type.startswith("application/strategic-merge-patch+json")
    annotations = patch.body["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {RESTARTED_AT_ANNOTATION: result.restarted_at}
    after = cluster.deployment(NS, CORE)
    assert after is not None and after.restarted_at == before.restarted_at
    assert after.generation == before.generation
    assert not sandbox.cluster.journal.mutations(f"/deployments/{CORE}")


def test_rollout_restart_then_wait_for_rollout(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    eventually(sandbox, lambda: (s := cluster.rollout_status(NS, CORE)) is not None and s.done)
    result = cluster.rollout_restart(NS, CORE, dry_run=False)
    assert not result.dry_run and result.generation == result.previous_generation + 1
    restarted = cluster.deployment(NS, CORE)
    assert restarted is not None and restarted.restarted_at == result.restarted_at
    status = cluster.wait_for_rollout(NS, CORE, timeout=60)
    assert status.state is RolloutState.COMPLETE, status.message
    assert status.message == f'deployment "{CORE}" successfully rolled out'
    watches = [
        q
        for q in queries(sandbox, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments$")
        if q.get("watch")
    ]
    if watches:  # a rollout that finished between the LIST and the WATCH needs no watch
        assert watches[0]["fieldSelector"] == [f"metadata.name={CORE}"]
        assert "timeoutSeconds" in watches[0] and "resourceVersion" in watches[0]


def test_restart_refuses_a_paused_deployment(cluster: KubernetesCluster, raw_api: Any) -> None:
    client.AppsV1Api(raw_api).patch_namespaced_deployment(WORKER, NS, {"spec": {"paused": True}})
    with pytest.raises(PermanentError, match="paused"):
        cluster.rollout_restart(NS, WORKER, dry_run=False)


def test_restart_of_a_missing_deployment_is_permanent(cluster: KubernetesCluster) -> None:
    with pytest.raises(PermanentError) as caught:
        cluster.rollout_restart(NS, "no-such-deployment", dry_run=True)
    assert caught.value.status == 404


def test_progress_deadline_exceeded_is_a_failed_rollout(
    cluster: KubernetesCluster, sandbox: SandboxServer, raw_api: Any
) -> None:
    sandbox.controllers.stop()  # keep the deployment controller from rewriting the status
    apps = client.AppsV1Api(raw_api)
    current = apps.read_namespaced_deployment(CLIENT, NS)
    conditions = [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "x" has timed out progressing.',
        },
    ]
    apps.patch_namespaced_deployment_status(
        CLIENT,
        NS,
        {
            "status": {
                "observedGeneration": current.metadata.generation,
                "updatedReplicas": 0,
                "conditions": conditions,
            }
        },
    )
    status = cluster.rollout_status(NS, CLIENT)
    assert status is not None and status.state is RolloutState.FAILED
    assert status.message == f'deployment "{CLIENT}" exceeded its progress deadline'
    assert cluster.wait_for_rollout(NS, CLIENT, timeout=5).state is RolloutState.FAILED


def test_wait_for_rollout_returns_the_last_state_at_timeout(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    sandbox.controllers.stop()  # nothing moves: the rollout cannot finish
    cluster.rollout_restart(NS, WORKER, dry_run=False)
    started = time.monotonic()
    status = cluster.wait_for_rollout(NS, WORKER, timeout=2)
    assert status.state is RolloutState.PENDING
    assert time.monotonic() - started < 10
    watches = [
        q
        for q in queries(sandbox, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments$")
        if q.get("watch")
    ]
    assert watches and watches[0]["allowWatchBookmarks"] == ["true"]


# ---------------------------------------------------------------------------------------------
# scale, env


def test_scale_subresource_for_deployments_and_statefulsets(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    scale = cluster.scale(NS, "Deployment", WORKER)
    assert scale is not None and scale.replicas >= 1 and scale.selector
    redis = cluster.pod(NS, "redis-master-0")
    assert redis is not None and redis.owner is not None and redis.owner.kind == "StatefulSet"
    sts_scale = cluster.scale(NS, "StatefulSet", redis.owner.name)
    assert sts_scale is not None and sts_scale.replicas == 1
    assert cluster.scale(NS, "Deployment", "no-such-deployment") is None

    planned = cluster.set_replicas(NS, "Deployment", WORKER, 8, dry_run=True)
    assert (planned.previous, planned.requested, planned.replicas) == (scale.replicas, 8, 8)
    patch = sandbox.cluster.journal.requests("PATCH", f"/deployments/{WORKER}/scale$")[-1]
    assert patch.query["dryRun"] == ["All"]
    assert patch.content_type.startswith("application/merge-patch+json")
    assert patch.body == {"spec": {"replicas": 8}}
    unchanged = cluster.scale(NS, "Deployment", WORKER)
    assert unchanged is not None and unchanged.replicas == scale.replicas

    done = cluster.set_replicas(NS, "Deployment", WORKER, 8, dry_run=False)
    assert (done.previous, done.replicas, done.dry_run) == (scale.replicas, 8, False)
    eventually(sandbox, lambda: len(cluster.pods(NS, f"app={WORKER}")) == 8)


def test_set_env_keeps_other_variables_and_reports_the_previous_value(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    before = cluster.deployment(NS, CORE)
    assert before is not None
    others = {c.name: {e.name for e in c.env} for c in before.containers}
    variable = "ALPHASWARM_AUTH_ENFORCE"

    planned = cluster.set_env(NS, CORE, variable, "permissive", dry_run=True)
    assert planned.dry_run
    patch = sandbox.cluster.journal.requests("PATCH", f"/deployments/{CORE}$")[-1]
    assert patch.query["dryRun"] == ["All"] and patch.query["fieldManager"] == ["kubectl-set"]
    assert patch.content_type.startswith("application/strategic-merge-patch+json")
    same = cluster.deployment(NS, CORE)
    assert same is not None and same.containers == before.containers

    change = cluster.set_env(NS, CORE, variable, "permissive", dry_run=False)
    after = cluster.deployment(NS, CORE)
    assert after is not None
    for container in after.containers:
        assert {e.name for e in container.env} >= others[container.name]
        env = container.env_var(variable)
        assert env is not None and env.value == "permissive"
    assert after.containers[0].image == before.containers[0].image
    assert change.generation == after.generation > before.generation
    first = before.containers[0].env_var(variable)
    assert change.previous_value == (first.value if first else None)

    # revert exactly what was there
    if change.previous_value is None:
        removed = cluster.set_env(NS, CORE, variable, None, dry_run=False)
        assert removed.previous_value == "permissive"
        gone = cluster.deployment(NS, CORE)
        assert gone is not None and gone.containers[0].env_var(variable) is None
    else:
        cluster.set_env(NS, CORE, variable, change.previous_value, dry_run=False)
    reverted = cluster.deployment(NS, CORE)
    assert reverted is not None
    assert {c.name: {e.name for e in c.env} for c in reverted.containers} == others


# ---------------------------------------------------------------------------------------------
# HPA


def test_hpa_read_with_rescale_history(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    sandbox.cluster.behaviour.hpa_flap(NS, CORE, 3, 6)
    hpa = eventually(
        sandbox,
        lambda: (
            (h := cluster.hpa(NS, CORE)) is not None
            and len({r.new_size for r in h.rescales}) >= 2
            and h
        ),
    )
    assert hpa.target.kind == "Deployment" and hpa.target.name == CORE
    assert hpa.max_replicas >= (hpa.min_replicas or 1)
    assert hpa.metrics and hpa.metrics[0].type
    assert {r.new_size for r in hpa.rescales} >= {3, 6}
    assert all(r.count >= 1 and r.last_timestamp is not None for r in hpa.rescales)
    selector = queries(sandbox, "GET", f"/api/v1/namespaces/{NS}/events$")[-1]["fieldSelector"]
    assert set(selector[0].split(",")) == {
        "involvedObject.kind=HorizontalPodAutoscaler",
        f"involvedObject.name={CORE}",
        "reason=SuccessfulRescale",
    }
    assert cluster.hpa(NS, "no-such-hpa") is None


def test_hpa_rescale_history_parses_combined_events(
    cluster: KubernetesCluster, raw_api: Any
) -> None:
    hpa = cluster.hpa(NS, CORE)
    assert hpa is not None
    core = client.CoreV1Api(raw_api)
    for name, message, count, last in [
        ("up", "New size: 6; reason: cpu resource utilization above target", 9, "10:09:30"),
        (
            "down",
            "(combined from similar events): New size: 3; reason: All metrics below target",
            8,
            "10:09:00",
        ),
    ]:
        core.create_namespaced_event(
            NS,
            {
                "metadata": {"name": f"{CORE}.{name}", "namespace": NS},
                "involvedObject": {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "name": CORE,
                    "namespace": NS,
                    "uid": hpa.uid,
                },
                "reason": "SuccessfulRescale",
                "message": message,
                "type": "Normal",
                "count": count,
                "firstTimestamp": "2030-01-10T09:40:00Z",
                "lastTimestamp": f"2030-01-10T{last}Z",
                "source": {"component": "horizontal-pod-autoscaler"},
            },
        )
    history = cluster.hpa_rescales(NS, CORE)
    assert [(r.new_size, r.count) for r in history[-2:]] == [(3, 8), (6, 9)]
    assert history[-2].reason == "All metrics below target"


def test_scale_up_window_patch_with_and_without_behavior(
    cluster: KubernetesCluster, sandbox: SandboxServer, raw_api: Any
) -> None:
    before = cluster.hpa(NS, CORE)
    assert before is not None
    planned = cluster.set_hpa_scale_up_window(NS, CORE, 300, dry_run=True)
    assert planned.dry_run and planned.result == 300
    patch = sandbox.cluster.journal.requests("PATCH", f"/horizontalpodautoscalers/{CORE}$")[-1]
    assert patch.query["dryRun"] == ["All"]
    assert patch.content_type.startswith("application/merge-patch+json")
    assert patch.body == {"spec": {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 300}}}}
    unchanged = cluster.hpa(NS, CORE)
    assert unchanged is not None and unchanged.behavior == before.behavior

    # behavior absent: a json-patch replace would 422 here, the merge patch creates it
    client.AutoscalingV2Api(raw_api).patch_namespaced_horizontal_pod_autoscaler(
        CORE, NS, {"spec": {"behavior": None}}, _content_type="application/merge-patch+json"
    )
    bare = cluster.hpa(NS, CORE)
    assert bare is not None
    change = cluster.set_hpa_scale_up_window(NS, CORE, 300, dry_run=False)
    assert (change.behavior_existed, change.result) == (bare.behavior is not None, 300)
    after = cluster.hpa(NS, CORE)
    assert after is not None and after.behavior is not None and after.behavior.scale_up is not None
    assert after.behavior.scale_up.stabilization_window_seconds == 300

    # behavior present: other rules survive
    again = cluster.set_hpa_scale_up_window(NS, CORE, 120, dry_run=False)
    assert (again.previous, again.result, again.behavior_existed) == (300, 120, True)
    final = cluster.hpa(NS, CORE)
    assert final is not None and final.behavior is not None
    assert final.behavior.scale_down == after.behavior.scale_down


# ---------------------------------------------------------------------------------------------
# networking


def test_endpoints_readiness(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    running_pod(cluster, sandbox, f"app={CLIENT}")
    endpoints = eventually(
        sandbox, lambda: (e := cluster.endpoints(NS, CLIENT)) is not None and e.ready and e
    )
    pods = {p.name for p in cluster.pods(NS)}
    assert all(a.pod in pods for a in endpoints.addresses)
    assert endpoints.ports
    cp = cluster.endpoints(ADMIN, CP)
    assert cp is not None
    assert cluster.endpoints(NS, "no-such-service") is None

    victim = next(
        p for p in cluster.pods(NS, f"app={CLIENT}") if p.ip in {a.ip for a in endpoints.ready}
    )
    sandbox.cluster.behaviour.set_pod(victim.uid, ready=False)
    not_ready = eventually(
        sandbox,
        lambda: (
            (e := cluster.endpoints(NS, CLIENT)) is not None
            and any(a.pod == victim.name for a in e.not_ready)
            and e
        ),
    )
    assert victim.name not in {a.pod for a in not_ready.ready}


def test_endpoint_slices(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    running_pod(cluster, sandbox, f"app={CLIENT}")
    slices = eventually(sandbox, lambda: cluster.endpoint_slices(NS, CLIENT))
    assert all(s.service == CLIENT and s.address_type for s in slices)
    assert any(e.ready for s in slices for e in s.endpoints)
    query = queries(sandbox, "GET", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices$")
    assert query[-1]["labelSelector"] == [f"kubernetes.io/service-name={CLIENT}"]


def test_services_network_policies_and_ingresses(cluster: KubernetesCluster) -> None:
    services = {s.name: s for s in cluster.services(NS)}
    assert CLIENT in services and services[CLIENT].ports and services[CLIENT].selector
    assert cluster.service(ADMIN, CP) is not None
    assert cluster.service(NS, "no-such-service") is None
    policies = cluster.network_policies(NS)
    assert policies
    assert all(p.policy_types for p in policies)
    assert any(rule.ports or rule.peers for p in policies for rule in (*p.ingress, *p.egress))
    ingresses = [i for ns in (NS, ADMIN) for i in cluster.ingresses(ns)]
    assert ingresses
    assert any(path.service for i in ingresses for path in i.paths)
    assert all(i.hosts for i in ingresses)


# ---------------------------------------------------------------------------------------------
# stateful: delete and come back, StatefulSet, PVC, PDB


def test_delete_pods_by_selector(cluster: KubernetesCluster, sandbox: SandboxServer) -> None:
    before = cluster.pods(NS, "app=postgres")
    assert before
    planned = cluster.delete_pods(NS, "app=postgres", dry_run=True)
    assert {(d.name, d.uid) for d in planned} == {(p.name, p.uid) for p in before}
    deletes = sandbox.cluster.journal.requests("DELETE", "/pods/postgres-0$")
    assert deletes and all(r.query.get("dryRun") == ["All"] for r in deletes)
    assert {p.uid for p in cluster.pods(NS, "app=postgres")} == {p.uid for p in before}
    assert not sandbox.cluster.journal.mutations("/pods/")

    deleted = cluster.delete_pods(NS, "app=postgres", dry_run=False)
    assert {d.uid for d in deleted} == {p.uid for p in before} and not deleted[0].dry_run
    old = {p.uid for p in before}
    back = eventually(
        sandbox,
        lambda: (p := cluster.pod(NS, "postgres-0")) is not None and p.uid not in old and p,
    )
    assert back.name == "postgres-0"
    with pytest.raises(PermanentError):
        cluster.delete_pods(NS, "", dry_run=True)


def test_delete_one_pod_and_it_comes_back(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    redis = cluster.pod(NS, "redis-master-0")
    assert redis is not None
    deleted = cluster.delete_pod(NS, "redis-master-0", dry_run=False)
    assert deleted is not None and deleted.uid == redis.uid
    back = eventually(
        sandbox,
        lambda: (p := cluster.pod(NS, "redis-master-0")) is not None and p.uid != redis.uid and p,
    )
    assert back.restarts == 0
    assert cluster.delete_pod(NS, "no-such-pod", dry_run=False) is None


def test_statefulset_pvc_and_pdb(cluster: KubernetesCluster) -> None:
    redis = cluster.pod(NS, "redis-master-0")
    assert redis is not None and redis.owner is not None
    sts = cluster.statefulset(NS, redis.owner.name)
    assert sts is not None and sts.replicas == 1 and sts.update_revision
    assert sts.observed_generation >= 1
    assert cluster.statefulset(NS, "no-such-statefulset") is None
    claims = cluster.pvcs(NS)
    assert claims
    assert any(c.name.endswith("postgres-0") for c in claims)
    claim = cluster.pvc(NS, claims[0].name)
    assert claim is not None and claim.phase == "Bound" and claim.capacity_bytes
    assert claim.storage_class is not None and claim.volume_name
    assert cluster.pvc(NS, "no-such-claim") is None
    budgets = cluster.pod_disruption_budgets(NS)
    assert budgets, "the runbook relies on a PDB for alphaswarm-core"
    budget = cluster.pod_disruption_budget(NS, budgets[0].name)
    assert budget is not None
    assert budget.min_available is not None or budget.max_unavailable is not None
    assert budget.expected_pods >= budget.current_healthy >= 0
    assert cluster.pod_disruption_budget(NS, "no-such-pdb") is None


# ---------------------------------------------------------------------------------------------
# exec


def test_exec_in_a_pod_and_in_a_deployment(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    pod = running_pod(cluster, sandbox, f"app={CORE}")
    jwks = curl_jwks(JWKS_URL)
    result = cluster.exec(NS, pod.name, jwks, timeout=10)
    assert (result.exit_code, result.timed_out, result.command) == (0, False, jwks.argv)
    assert '"keys"' in result.stdout
    in_deployment = cluster.exec_in_deployment(NS, CORE, runs_list(5), timeout=10)
    assert in_deployment.ok and in_deployment.pod in {p.name for p in cluster.pods(NS)}
    assert len(in_deployment.stdout.strip().splitlines()) == 6  # a header and 5 runs
    failing = cluster.exec(NS, pod.name, redis_cli("ping"), timeout=10)  # not in the core image
    assert failing.exit_code not in (0, None) and failing.stderr
    with pytest.raises(PermanentError) as caught:
        cluster.exec(NS, "no-such-pod", jwks, container="app", timeout=5)
    assert caught.value.status == 404


@pytest.mark.parametrize(
    "command",
    [
        ExecCommand(name="curl-jwks", argv=("hostname",)),
        ExecCommand(name="runs-list", argv=("sh", "-c", "rm -rf /data")),
        ExecCommand(name="redis-cli", argv=("redis-cli", "flushall")),
        ExecCommand(name="redis-cli", argv=("redis-cli", "config", "set", "dir", "/tmp")),
        ExecCommand(name="psql-select", argv=("psql", "-tAc", "drop table terraform_runs")),
        ExecCommand(name="celery-inspect", argv=("celery", "-A", "app", "control", "shutdown")),
        ExecCommand(name="runs-list", argv=("curl", "-fsS", "https://example.com/x")),  # misnamed
        ExecCommand(
            name="redis-cli",
            argv=("sh", "-c", "read -r X; eval $X", "redis-cli", "ping"),
            stdin=SecretStr("rm -rf /"),
        ),
    ],
    ids=lambda c: " ".join(c.argv)[:40],
)
def test_an_undeclared_command_is_refused_before_anything_is_sent(
    cluster: KubernetesCluster, sandbox: SandboxServer, command: ExecCommand
) -> None:
    pod = running_pod(cluster, sandbox, f"app={CORE}")
    sandbox.cluster.journal.clear()
    with pytest.raises(PermanentError, match="not one of the declared read-only commands"):
        cluster.exec(NS, pod.name, command, timeout=5)
    with pytest.raises(PermanentError, match="not one of the declared read-only commands"):
        cluster.exec_in_deployment(NS, CORE, command, timeout=5)
    assert sandbox.cluster.journal.requests(path="/exec$") == []


def test_reads_from_other_threads_go_on_while_execs_connect(
    cluster: KubernetesCluster, sandbox: SandboxServer
) -> None:
    """The kubernetes client's stream() makes its ApiClient speak WebSocket while an exec
    connects: a read sharing that client from another thread then fails with "Handshake status
    200 OK". Triage probes side by side, so execs have a client of their own."""
    pod = running_pod(cluster, sandbox, f"app={CORE}")
    failures: list[BaseException] = []
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            try:
                cluster.deployment(NS, CORE)
                cluster.pods(NS)
            except BaseException as exc:
                failures.append(exc)
                return

    readers = [threading.Thread(target=read_until_done) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(15):
            assert cluster.exec(NS, pod.name, curl_jwks(JWKS_URL), timeout=10).ok
    finally:
        done.set()
        for reader in readers:
            reader.join(10)
    assert failures == []


# ---------------------------------------------------------------------------------------------
# errors


def test_server_errors_and_timeouts_are_transient(kubeconfig: Path, sandbox: SandboxServer) -> None:
    with KubernetesCluster(KubeAccess(kubeconfig=kubeconfig, request_timeout_seconds=1)) as c:
        sandbox.cluster.faults.add(Fault(path="/pods$", error_rate=1.0, status=503))
        with pytest.raises(TransientError) as caught:
            c.pods(NS)
        assert caught.value.status == 503
        attempts = sandbox.cluster.journal.requests("GET", f"/namespaces/{NS}/pods$")
        assert len(attempts) == 1, "adapters never retry"
        sandbox.cluster.faults.clear()
        sandbox.cluster.faults.add(Fault(path="/deployments/", timeout=True))
        with pytest.raises(TransientError):
            c.deployment(NS, CORE)
        sandbox.cluster.faults.clear()
        sandbox.cluster.faults.add(Fault(path="/scale$", error_rate=1.0, status=409))
        with pytest.raises(TransientError) as conflict:
            c.scale(NS, "Deployment", WORKER)
        assert conflict.value.status == 409


def test_bad_requests_are_permanent_and_keep_the_server_message(
    cluster: KubernetesCluster,
) -> None:
    with pytest.raises(PermanentError) as caught:
        cluster.events(NS, "spec.nonsense=x")
    assert caught.value.status == 400
    assert "field label not supported" in caught.value.message
    with pytest.raises(PermanentError):
        cluster.set_replicas(NS, "Deployment", WORKER, -1, dry_run=True)
