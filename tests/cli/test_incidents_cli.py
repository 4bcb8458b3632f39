"""`remediate db ...` and `remediate incidents ...`: an unmigrated store is refused with the command
that fixes it; after a real triage run, the incident is listed, shown, re-rendered and counted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from remediate import incidents_cli
from remediate.cli import app
from sandbox.server import SandboxServer
from store.schema import head_revision
from tests.flows.sandbox_settings import ALERTS, point_flows_at
from tests.flows.test_triage_e2e import CASES, inject


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/fresh/incidents.db"
    monkeypatch.setenv("REMEDIATE_STORE__URL", url)
    return url


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_an_unmigrated_store_is_refused_until_db_upgrade(empty_store: str) -> None:
    for command in (
        ["incidents", "list"],
        ["incidents", "stats"],
        ["triage", "--alerts", str(ALERTS / "crashloop-single.json")],
    ):
        code, out, err = run(*command)
        assert code == 1, (command, out, err)
        assert "has no incident tables yet: run `remediate db upgrade`" in err, command
    assert run("db", "current")[0] == 1

    head = head_revision()
    code, out, _ = run("db", "upgrade")
    assert code == 0 and f"migrated from empty to revision {head}" in out
    code, out, _ = run("db", "upgrade")
    assert code == 0 and f"already at revision {head}" in out
    assert run("db", "current")[0] == 0
    code, out, _ = run("incidents", "list")
    assert code == 0 and "no incidents match" in out


def test_bad_filters_and_unknown_ids_say_what_is_valid() -> None:
    code, _, err = run("incidents", "list", "--status", "closed")
    assert code == 2 and "active" in err and "resolved" in err
    code, _, err = run("incidents", "list", "--scenario", "Z")
    assert code == 2 and "A to F" in err
    code, _, err = run("incidents", "list", "--since", "yesterday")
    assert code == 2 and "24h" in err
    code, _, err = run("incidents", "show", "999")
    assert code == 2 and "no incident 999" in err


def test_after_a_triage_run_the_incident_is_listed_shown_reported_and_counted(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_flows_at(sandbox, monkeypatch)
    # An operator's terminal, not CliRunner's 80 columns (COLUMNS alone is read too early when
    # the console was made under pytest-xdist, whose workers set it).
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(incidents_cli, "console", Console(width=200))
    case = CASES["crashloop-single"]
    inject(sandbox, case)
    code, out, err = run(
        "triage", "--alerts", str(ALERTS / "crashloop-single.json"), "--apply", "--json"
    )
    assert code == 0, err
    triaged = json.loads(out)
    incident_id = triaged["incident_id"]
    assert triaged["incident_status"] == "resolved" and triaged["report"]

    code, out, _ = run("incidents", "list", "--json")
    (row,) = json.loads(out)
    assert row["id"] == incident_id and row["scenario"] == "A" and row["status"] == "resolved"
    code, out, _ = run("incidents", "list", "--status", "active")
    assert code == 0 and "no incidents match" in out
    code, out, _ = run("incidents", "list", "--scenario", "a", "--status", "resolved")
    assert code == 0 and "A:alphaswarm/alphaswarm-core" in out

    code, out, _ = run("incidents", "show", str(incident_id))
    assert code == 0
    for seen in ("timeline", "opened on 1 alert", "mitigating", "verified", "resolved"):
        assert seen in out, seen
    assert "kubectl rollout restart -n alphaswarm deployment/alphaswarm-core" in out
    code, out, _ = run("incidents", "show", str(incident_id), "--json")
    shown = json.loads(out)
    assert [e["status"] for e in shown["timeline"] if e["kind"] == "transition"] == [
        "open",
        "triaged",
        "mitigating",
        "verified",
        "resolved",
    ]

    elsewhere = tmp_path / "elsewhere"
    code, out, _ = run("incidents", "report", str(incident_id), "--output-dir", str(elsewhere))
    assert code == 0, out
    (written,) = elsewhere.glob("*-pod-crash-alphaswarm-core.md")
    assert "## Timeline" in written.read_text() and str(written) in out

    code, out, _ = run("incidents", "stats", "--json")
    figures = json.loads(out)
    (a,) = [f for f in figures["by_scenario"] if f["scenario"] == "A"]
    assert a["incidents"] == 1 and a["mitigated_automatically"] == 1
    assert a["time_to_mitigate_median_seconds"] > 0
    code, out, _ = run("incidents", "stats", "--prometheus")
    families = {f.name: f for f in text_string_to_metric_families(out)}
    (sample,) = families["remediate_incidents"].samples
    assert sample.labels == {"scenario": "A"} and sample.value == 1
    code, out, _ = run("incidents", "stats")
    assert code == 0 and "mitigated automatically" in out


def test_metrics_serves_the_figures_until_sigterm(store: str) -> None:
    """`remediate incidents metrics` as an operator runs it: its own process, scraped, stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "remediate", "incidents", "metrics", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[1]
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        assert "# TYPE remediate_incidents_total counter" in body
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
