"""The real-cluster conditions a sandbox can be seeded with: each changes what the runbook's probes
see (a managed Postgres with no pod, a core image without curl, crash-looping pods that are
Running most of the time), is listed with its symptom and right and wrong readings, and composes
with every incident."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import conditions, injections
from sandbox.auth0 import JWKS_URL
from sandbox.cluster import SandboxCluster
from sandbox.conditions import RDS_HOST, seed_with
from sandbox.controllers import Controllers
from sandbox.resources import DEPLOYMENT, HPA, NETWORK_POLICY, POD, PVC, SERVICE, STATEFULSET
from sandbox.runtime import ExecResult
from sandbox.server import SandboxServer
from sandbox.shapes import is_crashing, is_ready, is_terminating
from sandbox.symptoms import showing
from tests.sandbox.test_topology import parse_all

NS = "alphaswarm"
ALL = tuple(conditions.names())


def conditioned(*names: str) -> tuple[SandboxCluster, Controllers]:
    cluster = SandboxCluster()
    seed_with(cluster, names)
    return cluster, Controllers(cluster)


def run(cluster: SandboxCluster, pod: str, *argv: str) -> ExecResult:
    return cluster.runtime.exec(NS, pod, "app", list(argv))


def first(cluster: SandboxCluster, app: str) -> str:
    pods, _ = cluster.store.list(POD, NS, labels=f"app={app}")
    return str(pods[0]["metadata"]["name"])


def test_registry_documents_each_condition() -> None:
    assert ALL == ("managed-postgres", "no-curl", "running-between-crashes")
    for c in conditions.CONDITIONS.values():
        assert c.summary and c.symptom and c.right and c.wrong
    with pytest.raises(conditions.UnknownCondition, match="known: managed-postgres"):
        conditions.resolve("spot-nodes")


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(conditions=("managed-postgres", "no-curl")) as srv:
        srv.controllers.stop()
        yield srv


def test_the_server_applies_and_lists_its_conditions(server: SandboxServer) -> None:
    assert server.conditions == ("managed-postgres", "no-curl")
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        items = http.get("/sandbox/v1/conditions").json()["items"]
        assert {i["name"]: i["applied"] for i in items} == {
            "managed-postgres": True,
            "no-curl": True,
            "running-between-crashes": False,
        }
        assert all(i["symptom"] and i["right"] and i["wrong"] for i in items)
        refused = http.post("/sandbox/v1/incidents/postgres-down")
        assert (
            refused.status_code == 409 and "managed outside the cluster" in refused.json()["error"]
        )
    with pytest.raises(ValueError, match="seeded"):
        SandboxServer(SandboxCluster(), conditions=("no-curl",))
    with pytest.raises(conditions.UnknownCondition):
        SandboxServer(conditions=("spot-nodes",))


# -- managed-postgres ------------------------------------------------------------------------


def test_managed_postgres_has_no_postgres_in_the_cluster() -> None:
    cluster, ctl = conditioned("managed-postgres")
    for _ in range(3):
        ctl.step()
    store = cluster.store
    assert store.get(STATEFULSET, NS, "postgres") is None
    assert store.list(POD, NS, labels="app=postgres")[0] == []
    assert [p["metadata"]["name"] for p in store.list(PVC, NS)[0]] == ["redis-data-redis-master-0"]
    service = store.get(SERVICE, NS, "postgres")
    assert service is not None
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == RDS_HOST
    assert "selector" not in service["spec"] and "clusterIP" not in service["spec"]
    for ns, name in (
        (NS, "alphaswarm-core"),
        (NS, "alphaswarm-worker"),
        ("alphaswarm-admin", "alphaswarm-cp"),
    ):
        deployment = store.get(DEPLOYMENT, ns, name)
        assert deployment is not None
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["DATABASE_URL"].startswith(f"postgresql://alphaswarm@{RDS_HOST}:5432/")
    assert store.get(NETWORK_POLICY, NS, "allow-to-postgres") is None
    egress = store.get(NETWORK_POLICY, NS, "alphaswarm-core-egress")
    assert egress is not None
    assert {"ipBlock": {"cidr": conditions.RDS_SUBNET}} in egress["spec"]["egress"][2]["to"]
    assert parse_all(cluster)


def test_managed_postgres_answers_as_up_and_refuses_postgres_down() -> None:
    cluster, _ = conditioned("managed-postgres")
    core = first(cluster, "alphaswarm-core")
    runs = run(cluster, core, "python", "-m", "alphaswarm.cli", "runs", "list", "--limit", "3")
    assert runs.exit_code == 0 and len(runs.stdout.splitlines()) == 4
    ready = run(cluster, core, "pg_isready", "-h", RDS_HOST)
    assert (ready.exit_code, ready.stdout) == (0, f"{RDS_HOST}:5432 - accepting connections\n")
    with pytest.raises(injections.IncidentError, match="managed outside the cluster"):
        injections.inject(cluster, "postgres-down")
    assert cluster.effects == {} and cluster.behaviour.pods == {}


# -- no-curl ---------------------------------------------------------------------------------


def test_no_curl_fails_the_exec_like_a_container_runtime_but_not_the_app() -> None:
    cluster, ctl = conditioned("no-curl")
    injections.inject(cluster, "jwks-503")
    ctl.step()
    core = first(cluster, "alphaswarm-core")
    curl = run(cluster, core, "curl", "-fsS", JWKS_URL)
    assert curl.exit_code == 126 and curl.stdout == ""
    assert curl.stderr == (
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"curl": executable file not found in $PATH: unknown\n'
    )
    assert run(cluster, first(cluster, "alphaswarm-worker"), "curl", JWKS_URL).exit_code == 126
    # The app's own JWKS client is not curl: it still logs why auth fails.
    pod = cluster.store.get(POD, NS, core)
    assert pod is not None
    log = cluster.runtime.logs(pod["metadata"]["uid"], "app", previous=False) or []
    assert any("jwks_unreachable: (22) The requested URL returned error: 503" in x for x in log)
    # Other images keep their curl.
    client = first(cluster, "alphaswarm-client")
    assert "returned error: 503" in run(cluster, client, "curl", "-fsS", JWKS_URL).stderr


# -- running-between-crashes -----------------------------------------------------------------


def test_running_between_crashes_still_heals_only_by_the_runbook_restart() -> None:
    cluster, ctl = conditioned("running-between-crashes")
    injections.inject(cluster, "crashloop-single")
    (uid,) = cluster.behaviour.pods
    pods, _ = cluster.store.list(POD, NS, labels="app=alphaswarm-core")
    name = next(p["metadata"]["name"] for p in pods if p["metadata"]["uid"] == uid)
    running = crashing = 0
    for _ in range(70):
        ctl.step()
        pod = cluster.store.get(POD, NS, name)
        assert pod is not None
        state = pod["status"]["containerStatuses"][0]["state"]
        running += "running" in state
        crashing += is_crashing(pod)
    assert running >= 55 and crashing >= 3
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 3

    def widen(hpa: dict[str, Any]) -> None:  # wrong: the HPA has nothing to do with it
        hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = 300

    cluster.store.update(HPA, NS, "alphaswarm-core", widen)
    seen = 0
    for _ in range(25):
        ctl.step()
        seen += is_crashing(cluster.store.get(POD, NS, name) or {})
    assert seen >= 1

    def restart(d: dict[str, Any]) -> None:  # kubectl rollout restart
        d["spec"]["template"]["metadata"].setdefault("annotations", {})["restartedAt"] = "now"

    cluster.store.update(DEPLOYMENT, NS, "alphaswarm-core", restart)
    for _ in range(20):
        ctl.step()
    for _ in range(25):
        ctl.step()
        pods, _ = cluster.store.list(POD, NS, labels="app=alphaswarm-core")
        assert not any(is_crashing(p) for p in pods)
    live = [p for p in pods if not is_terminating(p)]
    assert len(live) == 3 and all(is_ready(p) for p in live)


# -- composition -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", injections.names())
def test_every_incident_shows_under_all_conditions(name: str) -> None:
    cluster, ctl = conditioned(*ALL)
    if name == "postgres-down":
        with pytest.raises(injections.IncidentError):
            injections.inject(cluster, name)
        return
    injections.inject(cluster, name)
    for _ in range(60):
        ctl.step()
        if showing(cluster, name):
            break
    else:
        pytest.fail(f"{name} never showed under {ALL}")
