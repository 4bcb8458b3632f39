"""Issue 8's findings through `remediate triage`, as an operator runs it against a sandbox
seeded as a real cluster (`sandbox up --condition ...`), with real-format alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from remediate.cli import app
from sandbox import injections
from sandbox.server import SandboxServer
from sandbox.symptoms import showing
from tests.flows.sandbox_settings import ALERTS, rule_payload
from tests.flows.sandbox_state import settle


def live_payload(sandbox: SandboxServer, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(rule_payload(sandbox, name)))
    return path


def triage(path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["triage", "--alerts", str(path), "--json", *extra])
    assert result.stdout, result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, body


def inject(sandbox: SandboxServer, name: str) -> None:
    injections.inject(sandbox.cluster, name)
    settle(sandbox, lambda: showing(sandbox.cluster, name), timeout=20)


@pytest.mark.parametrize("conditioned", [("managed-postgres", "no-curl")], indirect=True)
def test_a_managed_postgres_and_no_curl_never_take_over_a_crash(
    conditioned: SandboxServer, tmp_path: Path
) -> None:
    """Before: F escalated "no Postgres pod exists to restart" for every incident, and a curl
    that could not run made D win. Now the crash is A, and both are named as not probed."""
    inject(conditioned, "crashloop-single")
    code, body = triage(live_payload(conditioned, "kube-pod-crashlooping-core", tmp_path))
    assert code == 0, body["reason"]
    assert body["scenario"] == "A"
    unknown = body["decision"]["inconclusive"]
    assert any(line.startswith("postgres: inconclusive") for line in unknown), unknown


@pytest.mark.parametrize("conditioned", [("running-between-crashes",)], indirect=True)
def test_a_control_plane_crash_is_a_for_alphaswarm_cp(
    conditioned: SandboxServer, tmp_path: Path
) -> None:
    """Before: a crash-looping alphaswarm-cp in alphaswarm-admin was never scenario A for it
    (targets came from fixed names), and a pod Running between crashes escalated."""
    inject(conditioned, "cp-crashloop")
    code, body = triage(live_payload(conditioned, "kube-pod-crashlooping-cp", tmp_path), "--apply")
    assert body["scenario"] == "A", body["reason"]
    assert (body["decision"]["namespace"], body["decision"]["target"]) == (
        "alphaswarm-admin",
        "alphaswarm-cp",
    )
    assert code == 0 and body["outcome"]["status"] == "mitigated", body["outcome"]
    restarts = [m.path for m in conditioned.cluster.journal.mutations() if "deployments" in m.path]
    assert restarts == ["/apis/apps/v1/namespaces/alphaswarm-admin/deployments/alphaswarm-cp"]


@pytest.mark.parametrize("conditioned", [()], indirect=True)
def test_several_crashes_behind_a_calm_hpa_are_restarted_not_patched(
    conditioned: SandboxServer, tmp_path: Path
) -> None:
    """Before: B found no thrashing, returned nothing to do, and the incident was recorded
    resolved while both pods still crashed."""
    inject(conditioned, "crashloop-several")
    code, body = triage(
        live_payload(conditioned, "kube-pod-crashlooping-core-two", tmp_path), "--apply"
    )
    assert body["scenario"] == "B", body["reason"]
    assert code == 0 and body["outcome"]["status"] == "mitigated", body["outcome"]
    paths = [m.path for m in conditioned.cluster.journal.mutations()]
    assert not any("horizontalpodautoscalers" in p for p in paths), paths
    assert not showing(conditioned.cluster, "crashloop-several")


@pytest.mark.parametrize("conditioned", [()], indirect=True)
def test_the_queue_backlog_is_reached_without_a_broker(
    conditioned: SandboxServer, tmp_path: Path
) -> None:
    """Before: without --celery no broker was configured, the queue was never probed, and
    triage escalated without saying it had not looked."""
    inject(conditioned, "queue-backlog")
    code, body = triage(ALERTS / "queue-backlog.json")
    assert code == 0 and body["scenario"] == "C", body["reason"]
