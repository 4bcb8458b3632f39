"""`remediate demo` (`make run`): its own sandbox, an incident injected, triage as a dry run and
then applied, through the real engine; the JSON shows both runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediate.cli import app
from sandbox import injections

# The demo points the flows at its own sandbox through these; monkeypatch restores them.
FLOW_ENV = (
    "REMEDIATE_KUBE__KUBECONFIG",
    "REMEDIATE_CONTROL_PLANE__BASE_URL",
    "REMEDIATE_CONTROL_PLANE__TOKEN",
    "REMEDIATE_AUTH__JWKS_URL",
    "REMEDIATE_INCIDENTS__HOLD_SECONDS",
    "REMEDIATE_AUTH__REVERT_HEALTHY_SECONDS",
    "REMEDIATE_CELERY__QUEUE_DEPTH_ALARM",
    "REMEDIATE_CELERY__QUEUES",
)


@pytest.fixture
def demo_env(prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in FLOW_ENV:
        monkeypatch.setenv(key, "recorded-so-it-is-restored")
        monkeypatch.delenv(key)


def test_demo_plans_then_mitigates_the_incident(demo_env: None) -> None:
    result = CliRunner().invoke(app, ["demo", "--incident", "ingress-503", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["incident"] == "ingress-503"
    planned, applied = body["dry_run"], body["apply"]
    assert planned["scenario"] == applied["scenario"] == "E"
    assert planned["outcome"]["status"] == "planned"
    assert planned["plan"] == [
        "planned: kubectl rollout restart -n alphaswarm deployment/alphaswarm-client"
    ]
    assert applied["outcome"]["status"] == "mitigated"
    assert applied["plan"] == [
        "applied: kubectl rollout restart -n alphaswarm deployment/alphaswarm-client"
    ]
    assert all(v["passed"] for v in applied["outcome"]["verification"])


def test_demo_shows_each_step(demo_env: None) -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    steps = ["1. sandbox", "2. incident", "3. triage, dry run", "4. triage --apply"]
    assert all(step in out for step in steps)
    assert [out.index(step) for step in steps] == sorted(out.index(step) for step in steps)
    assert "crashloop-single (runbook A)" in out
    assert "planned: kubectl rollout restart" in out and "applied: kubectl rollout restart" in out
    assert "✓ rollout complete" in out and "crashloop-single mitigated" in out


def test_demo_refuses_an_unknown_incident() -> None:
    result = CliRunner().invoke(app, ["demo", "--incident", "meteor-strike"])
    assert result.exit_code == 2 and "unknown incident 'meteor-strike'" in result.stderr


@pytest.mark.parametrize("name", injections.names())
def test_demo_mitigates_every_incident_the_sandbox_lists(demo_env: None, name: str) -> None:
    """`remediate demo --incident NAME` exits 0 for each name (before: C could not be detected
    without a broker, several crashes behind a calm HPA were recorded resolved unfixed)."""
    result = CliRunner().invoke(app, ["demo", "--incident", name, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["apply"]["scenario"] == injections.resolve(name).branch
    assert body["apply"]["outcome"]["status"] == "mitigated"
