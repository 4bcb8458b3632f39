"""Flows run through the real Prefect engine (a test harness server on SQLite) against a sandbox
cluster over loopback HTTP, reached through the settings exactly as in production."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.flow_env import datastore_env, flow_env
from sandbox.server import SandboxServer
from tasks.connection import close_all
from tests.alertmanager_stand_in import resolving_held_incidents
from tests.flows.gate_journal import ungated_writes

# The flows run as the project's service account, authorized by the Roles the project ships: a
# verb missing from infra/rbac.yaml fails the flow test with the 403 a cluster would answer.
RBAC_FILE = Path(__file__).resolve().parents[2] / "infra" / "rbac.yaml"
SERVICE_ACCOUNT = "system:serviceaccount:alphaswarm-admin:alphaswarm-remediate"


@pytest.fixture(autouse=True)
def store(incident_store: str) -> str:
    """Every flow records into a migrated store of its own (a module may override this fixture
    to run on every backend: `any_store`)."""
    return incident_store


@pytest.fixture
def sandbox(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    with SandboxServer(tick_seconds=0.05, rbac=RBAC_FILE, as_user=SERVICE_ACCOUNT) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("REMEDIATE_KUBE__KUBECONFIG", str(kubeconfig))
        # A sandbox is dev, said explicitly: unset is treated as production (a test may unset it).
        monkeypatch.setenv("REMEDIATE_ENVIRONMENT", "dev")
        # The logins of the sandbox's Postgres and Redis (a test may unset them).
        for key, value in datastore_env().items():
            monkeypatch.setenv(key, value)
        try:
            yield server
        finally:
            close_all()


@pytest.fixture
def conditioned(
    request: pytest.FixtureRequest,
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SandboxServer]:
    """A sandbox seeded as a real cluster of some kind (`sandbox.conditions`: parametrize it
    indirectly with the condition names), the flows pointed at it as `sandbox up` prints."""
    conditions: tuple[str, ...] = request.param
    with SandboxServer(
        tick_seconds=0.05, conditions=conditions, rbac=RBAC_FILE, as_user=SERVICE_ACCOUNT
    ) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("REMEDIATE_KUBE__KUBECONFIG", str(kubeconfig))
        for key, value in flow_env(server.url, server.cluster).items():
            monkeypatch.setenv(key, value)
        try:
            yield server
        finally:
            close_all()


# -- every write the sandbox took went through the gate (tests/flows/gate_journal.py) -------


@pytest.fixture(autouse=True)
def alertmanager_resolves(store: str) -> Iterator[None]:
    """Hand-made firing payloads get their resolved notification once the fix held
    (tests/alertmanager_stand_in.py)."""
    with resolving_held_incidents(store):
        yield


@pytest.fixture(autouse=True)
def every_write_went_through_the_gate(request: pytest.FixtureRequest, store: str) -> Iterator[None]:
    """After a test that used a sandbox (`sandbox`, `conditioned` or a module's own), every
    write the sandbox journalled must have an audit row from the gate: a write without one
    bypassed the gate. A test that writes to the sandbox itself over HTTP (kubectl, the
    sandbox's incident API) says so: `@pytest.mark.ungated_writes("why")`."""
    yield
    marker = request.node.get_closest_marker("ungated_writes")
    if marker is not None:
        assert marker.args and str(marker.args[0]).strip(), "ungated_writes needs a reason"
        return
    funcargs = getattr(request.node, "funcargs", None) or {}
    sandboxes = [v for v in funcargs.values() if isinstance(v, SandboxServer)]
    if not sandboxes:
        return
    urls = {store} | {u for u in [os.environ.get("REMEDIATE_STORE__URL")] if u}
    problems = ungated_writes(sandboxes, urls)
    assert not problems, "writes to the sandbox that bypassed the gate:\n  " + "\n  ".join(problems)
