"""`remediate triage` and `remediate diagnose`: payload validation before any work, the JSON
shape, and a run through the real engine against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediate.cli import app
from sandbox import injections
from sandbox.server import SandboxServer
from tests.flows.sandbox_settings import ALERTS, point_flows_at


@pytest.mark.parametrize(
    ("fixture", "problem"),
    [
        ("invalid-version.json", "version is '3', expected '4'"),
        ("invalid-missing-startsat.json", "alerts[0].startsAt: missing"),
    ],
)
def test_invalid_payload_exits_2_naming_the_problem(fixture: str, problem: str) -> None:
    result = CliRunner().invoke(app, ["triage", "--alerts", str(ALERTS / fixture), "--json"])
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())  # the console wraps long paths at its width
    assert problem in said and "Alertmanager v4" in said
    assert result.stdout == ""


def test_not_json_and_missing_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(app, ["triage", "--alerts", str(bad)])
    assert result.exit_code == 2 and "not JSON" in result.stderr
    result = CliRunner().invoke(app, ["triage", "--alerts", str(tmp_path / "absent.json")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_json_is_one_object_with_the_decision(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(sandbox, monkeypatch)
    injections.inject(sandbox.cluster, "jwks-503")
    sandbox.controllers.step()
    sandbox.cluster.journal.clear()
    result = CliRunner().invoke(
        app, ["triage", "--alerts", str(ALERTS / "jwks-503.json"), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert {"scenario", "reason", "plan", "outcome"} <= body.keys()
    assert body["scenario"] == "D"
    assert body["plan"] == [
        "planned: kubectl set env -n alphaswarm deploy/alphaswarm-core "
        "ALPHASWARM_AUTH_ENFORCE=permissive"
    ]
    assert body["outcome"]["status"] == "planned"
    assert sandbox.cluster.journal.mutations() == []


def test_unclear_alerts_print_null_scenario_and_exit_3(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(sandbox, monkeypatch)
    result = CliRunner().invoke(
        app, ["triage", "--alerts", str(ALERTS / "unclear.json"), "--json", "--apply"]
    )
    assert result.exit_code == 3, result.stderr
    body = json.loads(result.stdout)
    assert body["scenario"] is None and body["outcome"] is None and body["plan"] == []
    assert sandbox.cluster.journal.mutations(include_dry_run=True) == []


def test_rich_output_and_diagnose(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    point_flows_at(sandbox, monkeypatch)
    injections.inject(sandbox.cluster, "jwks-503")
    sandbox.controllers.step()
    result = CliRunner().invoke(app, ["triage", "--alerts", str(ALERTS / "jwks-503.json")])
    assert result.exit_code == 0, result.stderr
    assert "scenario D" in result.stdout and "planned" in result.stdout
    result = CliRunner().invoke(app, ["diagnose", "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert {"alphaswarm", "alphaswarm-admin"} <= body["pods"].keys() and body["recent_runs"]


def _write(tmp_path: Path, body: dict[str, object]) -> Path:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps(body))
    return path


def test_an_alert_without_labels_is_refused(tmp_path: Path) -> None:
    body = json.loads((ALERTS / "crashloop-single.json").read_text())
    del body["alerts"][0]["labels"]
    result = CliRunner().invoke(app, ["triage", "--alerts", str(_write(tmp_path, body))])
    assert result.exit_code == 2, result.output
    assert "alerts[0].labels: missing" in result.stderr


def test_an_alert_outside_the_watched_namespaces_is_ignored(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """kube-system/coredns crash-looping is not an AlphaSwarm incident: ignored, said why,
    nothing recorded, nothing changed (it used to escalate and be recorded)."""
    point_flows_at(sandbox, monkeypatch)
    path = ALERTS / "rules" / "kube-pod-crashlooping-coredns.json"
    result = CliRunner().invoke(app, ["triage", "--alerts", str(path), "--apply", "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["scenario"] is None and body["incident_id"] is None
    assert "kube-system is outside the configured namespaces" in body["ignored"][0]
    assert sandbox.cluster.journal.mutations() == []
