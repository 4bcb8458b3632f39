"""The adapter's paged raw LISTs against the sandbox over loopback HTTP: pages of 500 read
straight from their bytes into facts, every item once, the same facts as the client's models
gave, and a list that expires between pages is an error, never a shorter list."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sandbox import injections
from sandbox.paging import snapshots_of
from sandbox.resources import POD
from sandbox.server import SandboxServer
from tasks.adapters import wire
from tasks.adapters.cluster import CRASH_SUMMARY, PodRow, crash_summary
from tasks.adapters.errors import TransientError
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.adapters.kubernetes.client import PAGE_SIZE
from tasks.settings import KubeAccess
from tests.sandbox.factories import make_pod

MANY = "many"
COUNT = 2 * PAGE_SIZE + 1  # three pages


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        srv.controllers.stop()
        for i in range(COUNT):
            srv.cluster.store.create(POD, make_pod(f"pod-{i:04d}", namespace=MANY))
        yield srv


@pytest.fixture
def cluster(sandbox: SandboxServer, tmp_path: Path) -> Iterator[KubernetesCluster]:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    with KubernetesCluster(KubeAccess(kubeconfig=kubeconfig, request_timeout_seconds=30)) as c:
        yield c


def pod_lists(sandbox: SandboxServer) -> list[Any]:
    return sandbox.cluster.journal.requests("GET", f"^/api/v1/namespaces/{MANY}/pods$")


def test_a_list_over_three_pages_gives_every_pod_once(
    sandbox: SandboxServer, cluster: KubernetesCluster
) -> None:
    sandbox.cluster.journal.clear()
    rows = cluster.pod_rows(MANY)
    assert [r.name for r in rows] == [f"pod-{i:04d}" for i in range(COUNT)]
    requests = pod_lists(sandbox)
    assert len(requests) == 3
    assert all(r.query["limit"] == [str(PAGE_SIZE)] for r in requests)
    assert [bool(r.query.get("continue")) for r in requests] == [False, True, True]


def test_rows_are_the_pods_rows(sandbox: SandboxServer, cluster: KubernetesCluster) -> None:
    rows, pods = cluster.pod_rows(MANY), cluster.pods(MANY)
    assert len(rows) == len(pods) == COUNT
    fields = set(PodRow.model_fields)
    assert all(r == PodRow(**p.model_dump(include=fields)) for r, p in zip(rows, pods, strict=True))


@pytest.mark.parametrize("incident", ["crashloop-single", "crashloop-several", "hpa-thrash"])
def test_the_row_summary_is_what_the_container_statuses_say(incident: str, tmp_path: Path) -> None:
    """wire.pod_row summarises crashes from the JSON; cluster.crash_summary from the typed
    statuses: on pods that crash, restart and recover, the two agree, and a row is its pod's."""
    with SandboxServer() as srv:
        srv.controllers.stop()
        injections.inject(srv.cluster, incident)
        for _ in range(40):
            srv.controllers.step()
        raws = [dict(p) for p in srv.cluster.store.list(POD)[0]]
    assert any(wire.pod_row(p).last_crash_at is not None for p in raws)  # a crash to summarise
    for raw in raws:
        pod, row = wire.pod(raw), wire.pod_row(raw)
        summary = crash_summary(pod.container_statuses, pod.last_termination)
        assert {k: getattr(pod, k) for k in CRASH_SUMMARY} == summary
        assert row == PodRow(**pod.model_dump(include=set(PodRow.model_fields)))


def test_deployments_and_endpoints_are_paged_too(
    sandbox: SandboxServer, cluster: KubernetesCluster
) -> None:
    sandbox.cluster.journal.clear()
    assert {d.name for d in cluster.deployments("alphaswarm")} >= {"alphaswarm-core"}
    assert cluster.all_endpoints("alphaswarm")
    lists = sandbox.cluster.journal.requests("GET", r"/(deployments|endpoints)$")
    assert [r.query["limit"] for r in lists] == [[str(PAGE_SIZE)]] * 2


def test_a_list_expired_between_pages_is_an_error_not_a_shorter_list(
    sandbox: SandboxServer, cluster: KubernetesCluster
) -> None:
    """The server compacts the list's snapshot while the first page is read: the second page
    is a 410, and the read fails (transient: a new list starts from a fresh snapshot)."""
    store = sandbox.cluster.store
    seen: list[PodRow] = []

    def read_then_compact(raw: Any) -> PodRow:
        if not seen:
            store.create(POD, make_pod("pod-late", namespace=MANY))
            snapshots_of(store).clear()
        seen.append(wire.pod_row(raw))
        return seen[-1]

    sandbox.cluster.journal.clear()
    try:
        with pytest.raises(TransientError) as raised:
            cluster._paged(
                f"list pods in {MANY}",
                partial(cluster._core.list_namespaced_pod, MANY),
                read_then_compact,
            )
        assert raised.value.status == 410
        assert "too old to display a consistent list result" in raised.value.message
        assert f"after {PAGE_SIZE} item(s)" in raised.value.message
        assert [r.status for r in pod_lists(sandbox)] == [200, 410]
        # the probe's retry: a new list, consistent again
        assert len(cluster.pod_rows(MANY)) == COUNT + 1
    finally:
        store.delete(POD, MANY, "pod-late")
