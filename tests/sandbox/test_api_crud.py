"""CRUD, selectors, errors, patches and dry-run through the official client (v37, strict models)."""

from __future__ import annotations

import time

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.cluster import SandboxCluster
from sandbox.journal import Fault
from sandbox.resources import DEPLOYMENT, EVENT, POD
from sandbox.server import SandboxServer
from tests.sandbox.factories import NS, make_deployment, make_pod


def test_list_and_get_pods_with_label_selector(
    cluster: SandboxCluster, core: client.CoreV1Api
) -> None:
    cluster.store.create(POD, make_pod("api-1", restarts=7, waiting="CrashLoopBackOff"))
    cluster.store.create(POD, make_pod("web-1", labels={"app": "web"}))
    pods = core.list_namespaced_pod(NS, label_selector="app=api")
    assert [p.metadata.name for p in pods.items] == ["api-1"]
    assert pods.items[0].status.container_statuses[0].restart_count == 7
    assert pods.metadata.resource_version.isdigit()
    assert len(core.list_pod_for_all_namespaces().items) == 2
    assert core.read_namespaced_pod("web-1", NS).metadata.labels == {"app": "web"}


def test_errors_are_status_bodies(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("missing", NS)
    assert err.value.status == 404
    assert '"reason":"NotFound"' in err.value.body
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS, field_selector="spec.bogus=1")
    assert err.value.status == 400
    assert "field label not supported: spec.bogus" in err.value.body
    cluster.store.create(POD, make_pod("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(NS, make_pod("dup"))
    assert err.value.status == 409
    assert "AlreadyExists" in err.value.body


def test_event_field_selector(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    for name, reason in (("e1", "BackOff"), ("e2", "Pulled")):
        cluster.store.create(
            EVENT,
            {
                "metadata": {"name": name, "namespace": NS},
                "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": NS, "uid": "u1"},
                "reason": reason,
                "message": "m",
                "type": "Warning",
            },
        )
    events = core.list_namespaced_event(
        NS, field_selector="involvedObject.name=api-1,involvedObject.uid=u1,reason=BackOff"
    )
    assert [e.metadata.name for e in events.items] == ["e1"]


def test_create_replace_conflict_and_delete(
    cluster: SandboxCluster, core: client.CoreV1Api
) -> None:
    created = core.create_namespaced_pod(NS, make_pod("p1"))
    assert created.metadata.uid
    stale = created.metadata.resource_version
    body = core.read_namespaced_pod("p1", NS)
    body.metadata.labels = {"app": "api", "x": "1"}
    replaced = core.replace_namespaced_pod("p1", NS, body)
    assert replaced.metadata.labels["x"] == "1"
    body.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_pod("p1", NS, body)
    assert err.value.status == 409
    deleted = core.delete_namespaced_pod("p1", NS, grace_period_seconds=0)
    assert isinstance(deleted, client.V1Pod)
    assert deleted.metadata.deletion_timestamp is not None
    assert cluster.store.get(POD, NS, "p1") is None


def test_dry_run_stores_nothing(
    cluster: SandboxCluster, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    core.create_namespaced_pod(NS, make_pod("dry"), dry_run="All")
    assert cluster.store.get(POD, NS, "dry") is None
    cluster.store.create(DEPLOYMENT, make_deployment())
    rv = cluster.store.resource_version
    scale = apps.patch_namespaced_deployment_scale(
        "api", NS, {"spec": {"replicas": 9}}, dry_run="All"
    )
    assert scale.spec.replicas == 9
    apps.patch_namespaced_deployment("api", NS, {"metadata": {"labels": {"x": "y"}}}, dry_run="All")
    apps.delete_namespaced_deployment("api", NS, dry_run="All")
    assert cluster.store.resource_version == rv
    assert cluster.store.get(DEPLOYMENT, NS, "api")["spec"]["replicas"] == 3


def test_set_env_smp_keeps_other_variables_and_containers(
    cluster: SandboxCluster, apps: client.AppsV1Api
) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    generation = cluster.store.get(DEPLOYMENT, NS, "api")["metadata"]["generation"]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "LOG_LEVEL", "value": "debug"},
                                {"$patch": "delete", "name": "FEATURE_X"},
                            ],
                        }
                    ],
                }
            }
        }
    }
    dep = apps.patch_namespaced_deployment("api", NS, patch, field_manager="kubectl-set")
    containers = dep.spec.template.spec.containers
    assert [c.name for c in containers] == ["app", "sidecar"]
    assert [(e.name, e.value) for e in containers[0].env] == [("LOG_LEVEL", "debug")]
    assert containers[0].image == "ghcr.io/acme/api:1.4.2"
    assert dep.metadata.generation == generation + 1


def test_json_patch_failure_is_422_and_merge_patch_works(
    cluster: SandboxCluster, apps: client.AppsV1Api
) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "api", NS, [{"op": "replace", "path": "/spec/paused/x", "value": 1}]
        )
    assert err.value.status == 422
    dep = apps.patch_namespaced_deployment(
        "api",
        NS,
        [
            {"op": "test", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/replicas", "value": 4},
        ],
    )
    assert dep.spec.replicas == 4
    dep = apps.patch_namespaced_deployment(
        "api",
        NS,
        {"metadata": {"labels": {"app": None, "tier": "be"}}},
        _content_type="application/merge-patch+json",
    )
    assert dep.metadata.labels == {"tier": "be"}
    with pytest.raises(ApiException) as err:  # merge-patch replaces containers: image dropped
        apps.patch_namespaced_deployment(
            "api",
            NS,
            {"spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}},
            _content_type="application/merge-patch+json",
        )
    assert err.value.status == 422


def test_scale_subresource(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    scale = apps.read_namespaced_deployment_scale("api", NS)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (3, 3, "app=api")
    scale.spec.replicas = 5
    assert apps.replace_namespaced_deployment_scale("api", NS, scale).spec.replicas == 5
    with pytest.raises(ApiException) as err:  # the same (now stale) resourceVersion
        apps.replace_namespaced_deployment_scale("api", NS, scale)
    assert err.value.status == 409
    assert (
        apps.patch_namespaced_deployment_scale("api", NS, {"spec": {"replicas": 2}}).spec.replicas
        == 2
    )
    assert cluster.store.get(DEPLOYMENT, NS, "api")["spec"]["replicas"] == 2


def test_status_subresource_only_changes_status(
    cluster: SandboxCluster, apps: client.AppsV1Api
) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    apps.patch_namespaced_deployment_status(
        "api", NS, {"status": {"readyReplicas": 1}, "spec": {"replicas": 7}}
    )
    stored = cluster.store.get(DEPLOYMENT, NS, "api")
    assert (stored["status"]["readyReplicas"], stored["spec"]["replicas"]) == (1, 3)
    apps.patch_namespaced_deployment("api", NS, {"status": {"readyReplicas": 3}})
    assert cluster.store.get(DEPLOYMENT, NS, "api")["status"]["readyReplicas"] == 1


def test_delete_collection_and_non_pod_delete(
    cluster: SandboxCluster, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    for i in range(3):
        cluster.store.create(POD, make_pod(f"p{i}", labels={"app": "x" if i else "y"}))
    result = core.delete_collection_namespaced_pod(NS, label_selector="app=x")
    assert result is not None
    # Bound to a node, so they terminate gracefully (no kubelet here finishes the job) ...
    terminating = {
        p["metadata"]["name"]: p["metadata"].get("deletionGracePeriodSeconds")
        for p in cluster.store.list(POD, NS)[0]
    }
    assert terminating == {"p0": None, "p1": 30, "p2": 30}
    # ... and a forced delete removes them at once.
    core.delete_collection_namespaced_pod(NS, label_selector="app=x", grace_period_seconds=0)
    assert [p["metadata"]["name"] for p in cluster.store.list(POD, NS)[0]] == ["p0"]
    cluster.store.create(DEPLOYMENT, make_deployment())
    status = apps.delete_namespaced_deployment("api", NS, propagation_policy="Background")
    assert status["status"] == "Success"


def test_raw_edge_cases(cluster: SandboxCluster, server: SandboxServer) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    with httpx.Client(base_url=server.url) as http:
        r = http.get(f"/api/v1/namespaces/{NS}/pods", params={"watch": "T", "timeoutSeconds": 1})
        assert r.status_code == 200
        r = http.patch(
            f"/apis/apps/v1/namespaces/{NS}/deployments/api",
            content=b"{}",
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert (r.status_code, r.json()["kind"]) == (415, "Status")
        r = http.request("POST", f"/apis/apps/v1/namespaces/{NS}/deployments/api")
        assert (r.status_code, r.json()["reason"]) == (405, "MethodNotAllowed")
        r = http.get(f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": "a in (b"})
        assert r.status_code == 400
        # PUT without a Content-Type, as kubectl scale --current-replicas sends it
        scale = http.get(f"/apis/apps/v1/namespaces/{NS}/deployments/api/scale").json()
        scale["spec"]["replicas"] = 1
        r = http.put(
            f"/apis/apps/v1/namespaces/{NS}/deployments/api/scale",
            content=httpx.Request("PUT", "/", json=scale).content,
        )
        assert r.status_code == 200 and r.json()["spec"]["replicas"] == 1
        # DeleteOptions in the body, kubectl style, with dryRun
        r = http.request(
            "DELETE",
            f"/apis/apps/v1/namespaces/{NS}/deployments/api",
            json={"propagationPolicy": "Background", "dryRun": ["All"]},
        )
        assert r.status_code == 200
        assert cluster.store.get(DEPLOYMENT, NS, "api") is not None
    journal = cluster.journal.requests("DELETE")
    assert journal[-1].body == {"propagationPolicy": "Background", "dryRun": ["All"]}
    assert journal[-1].status == 200
    assert cluster.journal.mutations() == [r for r in cluster.journal.requests("PUT")]


def test_faults_apply_after_the_journal(cluster: SandboxCluster, server: SandboxServer) -> None:
    cluster.faults.add(Fault(path=r"/pods$", methods=frozenset({"GET"}), error_rate=1.0))
    cluster.faults.add(Fault(path=r"/services$", latency=0.2))
    with httpx.Client(base_url=server.url) as http:
        r = http.get(f"/api/v1/namespaces/{NS}/pods")
        assert (r.status_code, r.json()["kind"]) == (500, "Status")
        start = time.perf_counter()
        assert http.get(f"/api/v1/namespaces/{NS}/services").status_code == 200
        assert time.perf_counter() - start >= 0.2
    assert [r.status for r in cluster.journal.requests("GET", r"/pods$")] == [500]
