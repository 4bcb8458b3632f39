"""Reads cannot write: `tasks.connection.cluster()` is a separate read-only object, not the writer
typed as a reader, and the only door to the writer is `tasks.changes.writer` (the import-linter
contracts in pyproject.toml hold who may import it; `lint-imports` runs in `make test`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import FunctionType
from typing import cast

import pytest

from sandbox.server import SandboxServer
from tasks.adapters.cluster import Cluster, ClusterReader
from tasks.adapters.kubernetes import KubernetesCluster
from tasks.changes.writer import cluster_writer, control_plane_writer
from tasks.connection import close_all, cluster, http_endpoints
from tasks.settings import KubeAccess

ROOT = Path(__file__).resolve().parents[2]
NS, CORE = "alphaswarm", "alphaswarm-core"


def declared(protocol: type) -> set[str]:
    """The methods a Protocol declares itself (`Cluster` adds the writes to `ClusterReader`)."""
    return {
        name
        for name, value in vars(protocol).items()
        if isinstance(value, FunctionType) and not name.startswith("_")
    }


WRITES = declared(Cluster)
READS = declared(ClusterReader)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        server.controllers.stop()
        yield server


@pytest.fixture
def access(sandbox: SandboxServer, tmp_path: Path) -> Iterator[KubeAccess]:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield KubeAccess(kubeconfig=kubeconfig, request_timeout_seconds=5)
    finally:
        close_all()


def test_the_protocols_split_reads_from_writes() -> None:
    assert {"delete_pod", "delete_pods", "rollout_restart", "set_replicas"} <= WRITES
    assert {"pods", "deployment", "exec", "exec_in_deployment"} <= READS
    assert not WRITES & READS


def test_the_reader_is_not_the_writer_and_has_no_writing_method(access: KubeAccess) -> None:
    reader, writer = cluster(access), cluster_writer(access)
    assert reader is not writer
    assert not isinstance(reader, KubernetesCluster)
    assert sorted(m for m in WRITES if hasattr(reader, m)) == []
    # A cast changes nothing at run time: the method is not there.
    with pytest.raises(AttributeError):
        cast(Cluster, reader).delete_pod(NS, "anything", dry_run=True)
    # Exactly the reads, nothing else public (no client, no pool, no writer to reach through).
    public = {name for name in dir(reader) if not name.startswith("_")}
    assert public == READS
    # No attribute can be added to it, and it keeps no instance dict to find one in.
    with pytest.raises(AttributeError):
        reader.delete_pod = writer.delete_pod  # type: ignore[attr-defined]


def test_the_reader_reads_through_the_writers_pool(
    sandbox: SandboxServer, access: KubeAccess
) -> None:
    reader, writer = cluster(access), cluster_writer(access)
    assert cluster_writer(access) is writer  # one pooled client per access and process
    found = reader.deployment(NS, CORE)
    assert found is not None and found == writer.deployment(NS, CORE)
    assert [p.name for p in reader.pods(NS, f"app={CORE}")] == [
        p.name for p in writer.pods(NS, f"app={CORE}")
    ]
    # Closing the view leaves the pool to the process: the writer still works.
    reader.close()
    assert writer.deployment(NS, CORE) is not None
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []


def test_close_all_closes_the_shared_pool(access: KubeAccess) -> None:
    writer = cluster_writer(access)
    close_all()
    again = cluster_writer(access)
    assert again is not writer
    assert cluster(access).deployment(NS, CORE) is not None


def test_the_http_view_reads_jwks_and_cannot_scale_through_the_control_plane() -> None:
    try:
        view, writer = http_endpoints(), control_plane_writer()
        assert view is not writer
        assert {name for name in dir(view) if not name.startswith("_")} == {"jwks"}
        assert not hasattr(view, "scale_via_control_plane")
        assert hasattr(writer, "scale_via_control_plane")
        assert control_plane_writer() is writer  # one client per process, shared with the view
    finally:
        close_all()


def test_the_import_contracts_cover_every_package_and_follow_indirect_chains() -> None:
    import tomllib

    linter = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["name"]: c for c in linter["contracts"]}
    protected = {
        tuple(c["protected_modules"]): set(c["allowed_importers"])
        for c in contracts.values()
        if c["type"] == "protected"
    }
    assert protected[("tasks.changes.writer",)] == {"tasks.changes.mutations"}
    assert protected[("tasks.adapters.pool",)] == {"tasks.connection", "tasks.changes.writer"}
    assert protected[("tasks.adapters.kubernetes",)] == {"tasks.adapters.pool"}
    (chains,) = [
        c
        for c in contracts.values()
        if c["type"] == "forbidden"
        and "tasks.changes.writer" in c["forbidden_modules"]
        and "tasks.adapters.kubernetes" in c["forbidden_modules"]
    ]
    assert chains["allow_indirect_imports"] is False
    covered = {m.removesuffix(".**") for m in chains["source_modules"]}
    assert covered == set(linter["root_packages"])
    clients = contracts["Cluster, Celery, Redis and HTTP clients stay inside tasks.adapters"]
    assert clients["allow_indirect_imports"] is False
