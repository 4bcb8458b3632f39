"""The seeded topology: every object parses with the strict v37 models, it names what the
runbook names, it is settled (a tick changes nothing), and exec answers the runbook's commands."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient

from sandbox.auth0 import JWKS_URL
from sandbox.cluster import SandboxCluster
from sandbox.controllers import Controllers
from sandbox.redis_cli import SANDBOX_REDIS_PASSWORD
from sandbox.resources import (
    DEPLOYMENT,
    ENDPOINTS,
    HPA,
    INGRESS,
    KINDS,
    NAMESPACE,
    NETWORK_POLICY,
    POD,
    PVC,
    Kind,
)
from sandbox.topology import seed

MODELS = {
    "Pod": "V1Pod",
    "Event": "CoreV1Event",
    "Service": "V1Service",
    "Endpoints": "V1Endpoints",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Namespace": "V1Namespace",
    "Node": "V1Node",
    "Deployment": "V1Deployment",
    "ReplicaSet": "V1ReplicaSet",
    "StatefulSet": "V1StatefulSet",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "NetworkPolicy": "V1NetworkPolicy",
    "Ingress": "V1Ingress",
    "EndpointSlice": "V1EndpointSlice",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
}


def parse_all(cluster: SandboxCluster) -> int:
    """Deserialize every stored object with the client's strict models, as responses are."""
    api = ApiClient()
    count = 0
    for kind in KINDS:
        for obj in cluster.store.list(kind)[0]:
            api.deserialize(json.dumps(obj), MODELS[kind.kind], "application/json")
            count += 1
    return count


@pytest.fixture
def cluster() -> SandboxCluster:
    c = SandboxCluster()
    seed(c)
    return c


def names(cluster: SandboxCluster, kind: Kind, namespace: str | None = None) -> set[str]:
    return {o["metadata"]["name"] for o in cluster.store.list(kind, namespace)[0]}


def one(cluster: SandboxCluster, kind: Kind, ns: str, name: str) -> dict[str, Any]:
    obj = cluster.store.get(kind, ns, name)
    assert obj is not None, f"{kind.kind} {ns}/{name} missing"
    return obj


def test_every_object_parses_with_the_v37_models(cluster: SandboxCluster) -> None:
    assert parse_all(cluster) > 100


def test_the_runbook_names_exist(cluster: SandboxCluster) -> None:
    assert {"alphaswarm", "alphaswarm-admin", "ingress-nginx"} <= names(cluster, NAMESPACE)
    assert names(cluster, DEPLOYMENT, "alphaswarm") == {
        "alphaswarm-core",
        "alphaswarm-worker",
        "alphaswarm-client",
    }
    assert names(cluster, DEPLOYMENT, "alphaswarm-admin") == {"alphaswarm-cp"}
    assert names(cluster, DEPLOYMENT, "ingress-nginx") == {"ingress-nginx-controller"}
    assert "redis-master-0" in names(cluster, POD, "alphaswarm")
    postgres = cluster.store.list(POD, "alphaswarm", labels="app=postgres")[0]
    assert [p["metadata"]["name"] for p in postgres] == ["postgres-0"]
    assert postgres[0]["spec"]["volumes"][-1]["persistentVolumeClaim"] == {
        "claimName": "data-postgres-0"
    }
    assert names(cluster, PVC, "alphaswarm") == {"data-postgres-0", "redis-data-redis-master-0"}
    assert {"default-deny-ingress", "alphaswarm-core-egress"} <= names(
        cluster, NETWORK_POLICY, "alphaswarm"
    )
    cp_ingress = one(cluster, INGRESS, "alphaswarm-admin", "alphaswarm-cp")
    assert (
        "nginx.ingress.kubernetes.io/whitelist-source-range"
        in cp_ingress["metadata"]["annotations"]
    )


def test_workloads_are_settled_and_ready(cluster: SandboxCluster) -> None:
    core = one(cluster, DEPLOYMENT, "alphaswarm", "alphaswarm-core")
    env = {e["name"]: e["value"] for e in core["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ALPHASWARM_AUTH_ENFORCE"] == "enforce"
    assert core["status"]["availableReplicas"] == core["status"]["updatedReplicas"] == 3
    progressing = {c["type"]: c["reason"] for c in core["status"]["conditions"]}
    assert progressing == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }
    hpa = one(cluster, HPA, "alphaswarm", "alphaswarm-core")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["status"]["currentMetrics"][0]["resource"]["name"] == "cpu"
    for svc in (("alphaswarm", "alphaswarm-client"), ("alphaswarm-admin", "alphaswarm-cp")):
        subsets = one(cluster, ENDPOINTS, *svc)["subsets"]
        assert subsets and subsets[0]["addresses"] and "notReadyAddresses" not in subsets[0]
    rv = cluster.store.resource_version
    Controllers(cluster).step()
    assert cluster.store.resource_version == rv, "a settled cluster must not change on a tick"


def test_every_container_has_logs_and_usage(cluster: SandboxCluster) -> None:
    for pod in cluster.store.list(POD)[0]:
        uid = pod["metadata"]["uid"]
        for c in pod["spec"]["containers"]:
            assert cluster.runtime.logs(uid, c["name"], previous=False), pod["metadata"]["name"]
            cpu, memory = cluster.runtime.usage(uid, c["name"])
            assert cpu.endswith("m") and memory.endswith("Mi")
    worker = cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-worker")[0][0]
    log = "\n".join(cluster.runtime.logs(worker["metadata"]["uid"], "app", previous=False) or [])
    assert "Task alphaswarm.tasks.backtest[" in log and "] started" in log and "succeeded" in log
    cp = cluster.store.list(POD, "alphaswarm-admin", labels="app=alphaswarm-cp")[0][0]
    cp_log = cluster.runtime.logs(cp["metadata"]["uid"], "app", previous=False) or []
    assert any('"event":"workload_run"' in line for line in cp_log)


def test_exec_answers_the_runbook_commands(cluster: SandboxCluster) -> None:
    core = cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-core")[0][0]
    pod = core["metadata"]["name"]
    run = cluster.runtime.exec
    assert run("alphaswarm", pod, "app", ["cat", "/etc/hostname"]).stdout == pod + "\n"
    assert "ALPHASWARM_AUTH_ENFORCE=enforce" in run("alphaswarm", pod, "app", ["env"]).stdout
    jwks = run("alphaswarm", pod, "app", ["curl", "-fsS", JWKS_URL])
    assert jwks.exit_code == 0 and json.loads(jwks.stdout)["keys"]
    cluster.behaviour.jwks_status = 503
    failed = run("alphaswarm", pod, "app", ["curl", "-fsS", JWKS_URL])
    assert (failed.exit_code, failed.stderr) == (
        22,
        "curl: (22) The requested URL returned error: 503\n",
    )
    runs = run(
        "alphaswarm",
        pod,
        "app",
        ["python", "-m", "alphaswarm.cli", "runs", "list", "--limit", "20"],
    )
    assert len(runs.stdout.splitlines()) == 21
    worker = cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-worker")[0][0]
    active = run(
        "alphaswarm",
        worker["metadata"]["name"],
        "app",
        ["celery", "-A", "alphaswarm.tasks.celery_app", "inspect", "active"],
    )
    assert active.stdout.endswith("2 nodes online.\n")
    ping = ["redis-cli", "-a", SANDBOX_REDIS_PASSWORD, "--no-auth-warning", "ping"]
    assert run("alphaswarm", "redis-master-0", "redis", ping).stdout == "PONG\n"
    assert run("alphaswarm", "postgres-0", "postgres", ["pg_isready"]).exit_code == 0
    df = run("alphaswarm", "postgres-0", "postgres", ["df", "-h"]).stdout
    assert "/var/lib/postgresql/data" in df
