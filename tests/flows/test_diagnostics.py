"""The common diagnostics flow, through the real engine against the seeded sandbox."""

from __future__ import annotations

from prefect import get_client

from flows.diagnostics import collect_diagnostics, render_diagnostics
from sandbox.server import SandboxServer


def test_snapshot_answers_each_runbook_command(sandbox: SandboxServer) -> None:
    snapshot = collect_diagnostics()
    assert set(snapshot.pods) == {"alphaswarm", "alphaswarm-admin"}
    assert any(p.name.startswith("alphaswarm-core") for p in snapshot.pods["alphaswarm"])
    assert any(p.name.startswith("alphaswarm-cp") for p in snapshot.pods["alphaswarm-admin"])
    cpu = [u.cpu_millicores for u in snapshot.top_cpu]
    memory = [u.memory_bytes for u in snapshot.top_memory]
    assert cpu and cpu == sorted(cpu, reverse=True)
    assert memory and memory == sorted(memory, reverse=True)
    assert snapshot.recent_events and len(snapshot.recent_events) <= 30
    assert snapshot.api_log_tail and "auth enforcement: enforce" in snapshot.api_log_tail
    assert snapshot.workload_run_lines
    assert all("workload_run" in line for line in snapshot.workload_run_lines)
    assert snapshot.recent_runs and snapshot.problems == ()
    report = render_diagnostics(snapshot)
    for heading in (
        "## Pods in `alphaswarm`",
        "## Pods in `alphaswarm-admin`",
        "## Top consumers by CPU",
        "## Top consumers by memory",
        "## Recent events",
        "## API log tail",
        "## Control-plane audit log: workload_run",
        "## Recent terraform_runs",
    ):
        assert heading in report
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []


def test_artifacts_on_the_run_page(sandbox: SandboxServer) -> None:
    collect_diagnostics()
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_latest_artifacts()}
    assert {
        "common-diagnostics",
        "diagnostics-top-cpu",
        "diagnostics-top-memory",
        "diagnostics-pods-alphaswarm",
        "diagnostics-pods-alphaswarm-admin",
    } <= keys
