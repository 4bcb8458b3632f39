"""Chunked LISTs as a real API server serves them (`sandbox/paging.py`): the real kubectl paging
through every pod, pages that stay a snapshot under writes, the apiserver's opaque continue
token, its 400 and 410 answers, and remainingItemCount."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.paging import INCONSISTENT_CONTINUE, snapshots_of
from sandbox.resources import POD
from sandbox.server import SandboxServer
from tests.sandbox.factories import NS, make_pod

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
PODS = f"/api/v1/namespaces/{NS}/pods"


@pytest.fixture(scope="module")
def seeded() -> Iterator[SandboxServer]:
    """The seeded AlphaSwarm topology, its controllers stopped so the lists hold still."""
    with SandboxServer() as srv:
        srv.controllers.stop()
        yield srv


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def token(fields: dict[str, Any]) -> str:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def page(http: httpx.Client, path: str = PODS, **params: Any) -> dict[str, Any]:
    answer = http.get(path, params={k: v for k, v in params.items() if v is not None})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [i["metadata"]["name"] for i in body["items"]]


def pods(server: SandboxServer, count: int, namespace: str = NS) -> list[str]:
    made = [f"pod-{i:03d}" for i in range(count)]
    for name in made:
        server.cluster.store.create(POD, make_pod(name, namespace=namespace))
    return made


# -- kubectl ----------------------------------------------------------------------------------


def kubectl_pods(seeded: SandboxServer, tmp_path: Path, *scope: str) -> list[tuple[str, str]]:
    kubeconfig = seeded.write_kubeconfig(tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
    out = subprocess.run(
        ["kubectl", "get", "pods", "--chunk-size=3", *scope, "--no-headers", "-o", "wide"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    if "-A" in scope:
        return [(row[0], row[1]) for row in rows]
    return [(scope[-1], row[0]) for row in rows]


@pytest.mark.kubectl
@pytest.mark.parametrize("scope", [("-A",), ("-n", "alphaswarm")], ids=["all", "alphaswarm"])
def test_kubectl_pages_through_every_pod_once(
    seeded: SandboxServer, tmp_path: Path, scope: tuple[str, ...]
) -> None:
    namespace = None if scope == ("-A",) else scope[-1]
    stored = sorted(
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in seeded.cluster.store.list(POD, namespace)[0]
    )
    assert len(stored) > 6
    seeded.cluster.journal.clear()
    listed = kubectl_pods(seeded, tmp_path, *scope)
    assert sorted(listed) == stored  # every pod, each exactly once
    path = "/api/v1/pods" if namespace is None else f"/api/v1/namespaces/{namespace}/pods"
    requests = seeded.cluster.journal.requests("GET", f"^{path}$")
    assert all(r.query.get("limit") == ["3"] for r in requests)
    assert len(requests) == -(-len(stored) // 3)
    assert sum(1 for r in requests if r.query.get("continue")) == len(requests) - 1 >= 2


# -- pages over HTTP --------------------------------------------------------------------------


def test_pages_hold_every_item_once_with_the_remaining_count(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    made = pods(server, 7)
    first = page(http, limit=3)
    assert names(first) == made[:3]
    assert first["metadata"]["remainingItemCount"] == 4
    second = page(http, limit=3, **{"continue": first["metadata"]["continue"]})
    assert names(second) == made[3:6]
    assert second["metadata"]["remainingItemCount"] == 1
    last = page(http, limit=3, **{"continue": second["metadata"]["continue"]})
    assert names(last) == made[6:]
    assert "continue" not in last["metadata"] and "remainingItemCount" not in last["metadata"]
    assert first["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]


def test_the_token_is_the_apiservers(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    made = pods(server, 4)
    first = page(http, limit=2)
    raw = first["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    assert decoded == {
        "v": "meta.k8s.io/v1",
        "rv": int(first["metadata"]["resourceVersion"]),
        "start": made[1] + "\u0000",
    }
    across = page(http, "/api/v1/pods", limit=2)["metadata"]["continue"]
    start = json.loads(base64.urlsafe_b64decode(across + "=" * (-len(across) % 4)))["start"]
    assert start == f"{NS}/{made[1]}\u0000"


def test_a_write_between_pages_does_not_change_them(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    made = pods(server, 6)
    first = page(http, limit=2)
    store = server.cluster.store
    store.delete(POD, NS, made[3])
    store.create(POD, make_pod("pod-002a"))
    changed = store.mutable(POD, NS, made[4])
    changed["metadata"]["labels"] = {"changed": "yes"}
    store.replace(POD, changed)
    rest: list[dict[str, Any]] = []
    token_ = first["metadata"]["continue"]
    while token_:
        body = page(http, limit=2, **{"continue": token_})
        rest += body["items"]
        token_ = body["metadata"].get("continue")
    assert names(first) + [i["metadata"]["name"] for i in rest] == made
    assert all("changed" not in (i["metadata"].get("labels") or {}) for i in rest)
    # a new list sees the writes
    assert names(page(http)) == [*made[:3], "pod-002a", made[4], made[5]]


def test_a_selector_pages_without_a_remaining_count(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    for i in range(5):
        server.cluster.store.create(POD, make_pod(f"web-{i}", labels={"app": "web"}))
    server.cluster.store.create(POD, make_pod("db-0", labels={"app": "db"}))
    first = page(http, limit=2, labelSelector="app=web")
    assert names(first) == ["web-0", "web-1"]
    assert "continue" in first["metadata"] and "remainingItemCount" not in first["metadata"]
    rest = page(
        http, limit=10, labelSelector="app=web", **{"continue": first["metadata"]["continue"]}
    )
    assert names(rest) == ["web-2", "web-3", "web-4"]


def test_a_table_pages_as_kubectl_asks_for_it(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    made = pods(server, 5)
    answer = http.get(PODS, params={"limit": 2}, headers={"Accept": TABLE})
    body = answer.json()
    assert body["kind"] == "Table"
    assert [r["cells"][0] for r in body["rows"]] == made[:2]
    assert body["metadata"]["remainingItemCount"] == 3
    after = http.get(
        PODS,
        params={"limit": 10, "continue": body["metadata"]["continue"]},
        headers={"Accept": TABLE},
    ).json()
    assert [r["cells"][0] for r in after["rows"]] == made[2:]
    assert "continue" not in after["metadata"]


# -- 410 and 400 ------------------------------------------------------------------------------


def test_an_expired_snapshot_is_410_with_a_token_for_the_rest(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    made = pods(server, 5)
    first = page(http, limit=2)
    server.cluster.store.create(POD, make_pod("pod-000a"))  # the store moves on
    snapshots_of(server.cluster.store).clear()  # and the snapshot is gone, as if compacted
    answer = http.get(PODS, params={"limit": 2, "continue": first["metadata"]["continue"]})
    assert answer.status_code == 410
    status = answer.json()
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert (status["reason"], status["code"], status["message"]) == (
        "Expired",
        410,
        INCONSISTENT_CONTINUE,
    )
    # the token the Status carries goes on at the latest resourceVersion from the same key
    rest = page(http, limit=10, **{"continue": status["metadata"]["continue"]})
    assert names(rest) == made[2:]


def test_an_unknown_resource_version_is_410(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    pods(server, 3)
    stale = token({"v": "meta.k8s.io/v1", "rv": 5, "start": "pod-000\u0000"})
    answer = http.get(PODS, params={"limit": 2, "continue": stale})
    assert answer.status_code == 410, answer.text
    assert answer.json()["reason"] == "Expired"


def test_an_unchanged_store_serves_a_forgotten_snapshot(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    made = pods(server, 4)
    first = page(http, limit=2)
    snapshots_of(server.cluster.store).clear()
    rest = page(http, limit=2, **{"continue": first["metadata"]["continue"]})
    assert names(rest) == made[2:]


@pytest.mark.parametrize(
    ("continue_", "message"),
    [
        ("not base64!", "invalid continue token: continue key is not valid: "),
        (token({"v": "meta.k8s.io/v2", "rv": 9, "start": "a\u0000"}), "does not recognize"),
        (token({"v": "meta.k8s.io/v1", "rv": 0, "start": "a\u0000"}), "start resourceVersion"),
        (token({"v": "meta.k8s.io/v1", "rv": 9, "start": ""}), "start key empty"),
        (token({"v": "meta.k8s.io/v1", "rv": 9, "start": "../x\u0000"}), "not valid"),
    ],
    ids=["not-base64", "version", "rv-zero", "empty-start", "traversal"],
)
def test_a_malformed_token_is_400(
    http: httpx.Client, cluster: object, continue_: str, message: str
) -> None:
    answer = http.get(PODS, params={"limit": 2, "continue": continue_})
    assert answer.status_code == 400, answer.text
    status = answer.json()
    assert status["reason"] == "BadRequest"
    assert status["message"].startswith("invalid continue token: ")
    assert message in status["message"]


def test_a_resource_version_with_continue_is_400(
    server: SandboxServer, http: httpx.Client, cluster: object
) -> None:
    pods(server, 3)
    first = page(http, limit=2)
    answer = http.get(
        PODS,
        params={"limit": 2, "continue": first["metadata"]["continue"], "resourceVersion": "7"},
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "specifying resource version is not allowed when using continue"
    )
