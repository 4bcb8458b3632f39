"""kubectl-facing documents: server-side Tables (pod STATUS rules) and discovery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.cluster import SandboxCluster
from sandbox.resources import DEPLOYMENT, POD
from sandbox.server import SandboxServer
from sandbox.tables import human_duration, table
from tests.sandbox.factories import NS, make_deployment, make_pod

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _status(pod: dict[str, Any]) -> str:
    return str(table("/pods", [pod], "1")["rows"][0]["cells"][2])


def _with_state(state: dict[str, Any], **status: Any) -> dict[str, Any]:
    pod = make_pod("p")
    pod["status"]["containerStatuses"][0]["state"] = state
    pod["status"].update(status)
    return pod


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (make_pod("p"), "Running"),
        (make_pod("p", waiting="CrashLoopBackOff"), "CrashLoopBackOff"),
        (_with_state({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}), "OOMKilled"),
        (_with_state({"terminated": {"exitCode": 2}}), "ExitCode:2"),
        (_with_state({"terminated": {"exitCode": 0, "signal": 9}}), "Signal:9"),
        (_with_state({}, phase="Pending", reason="Evicted"), "Evicted"),
    ],
)
def test_pod_status_column(pod: dict[str, Any], expected: str) -> None:
    assert _status(pod) == expected


def test_pod_status_terminating_and_init() -> None:
    pod = make_pod("p")
    pod["metadata"]["deletionTimestamp"] = "2026-01-10T10:00:00Z"
    assert _status(pod) == "Terminating"
    pod = make_pod("p", phase="Pending")
    pod["spec"]["initContainers"] = [{"name": "init", "image": "i"}]
    pod["status"]["initContainerStatuses"] = [
        {
            "name": "init",
            "image": "i",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}},
        }
    ]
    assert _status(pod) == "Init:0/1"


def test_pod_table_over_http(cluster: SandboxCluster, server: SandboxServer) -> None:
    cluster.store.create(POD, make_pod("api-1", restarts=7, waiting="CrashLoopBackOff"))
    with httpx.Client(base_url=server.url) as http:
        body = http.get(f"/api/v1/namespaces/{NS}/pods", headers={"Accept": TABLE}).json()
        full = http.get(
            f"/api/v1/namespaces/{NS}/pods",
            params={"includeObject": "Object"},
            headers={"Accept": TABLE},
        ).json()
    assert body["kind"] == "Table"
    names = [c["name"] for c in body["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert [c["priority"] for c in body["columnDefinitions"]] == [0] * 5 + [1] * 4
    cells = body["rows"][0]["cells"]
    assert cells[:3] == ["api-1", "0/1", "CrashLoopBackOff"]
    finished = datetime(2026, 1, 10, 10, 5, tzinfo=UTC)
    assert cells[3] == f"7 ({human_duration((datetime.now(UTC) - finished).total_seconds())} ago)"
    assert body["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert full["rows"][0]["object"]["kind"] == "Pod"


def test_deployment_table_and_single_get(cluster: SandboxCluster, server: SandboxServer) -> None:
    cluster.store.create(DEPLOYMENT, make_deployment())
    with httpx.Client(base_url=server.url) as http:
        body = http.get(
            f"/apis/apps/v1/namespaces/{NS}/deployments/api", headers={"Accept": TABLE}
        ).json()
    assert body["rows"][0]["cells"][:4] == ["api", "3/3", 3, 0]


def test_discovery(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/version").json()["gitVersion"] == "v1.32.4"
        assert http.get("/api").json()["versions"] == ["v1"]
        groups = {g["name"] for g in http.get("/apis").json()["groups"]}
        assert {"apps", "autoscaling", "metrics.k8s.io", "discovery.k8s.io"} <= groups
        apps = {r["name"]: r for r in http.get("/apis/apps/v1").json()["resources"]}
        core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
        assert http.get("/openapi/v2").status_code == 404
        assert http.get("/apis/nope/v1").status_code == 404
    scale = apps["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert apps["deployments"]["shortNames"] == ["deploy"]
    assert "pods/log" in core and "pods/exec" in core
    assert core["pods"]["categories"] == ["all"]
