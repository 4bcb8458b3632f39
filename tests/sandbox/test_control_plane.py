"""The sandbox's non-Kubernetes endpoints: the AlphaSwarm control plane (/manage), the JWKS
endpoint, the incident control API, and the `remediate sandbox inject` CLI that drives it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config
from typer.testing import CliRunner

from remediate.cli import app
from sandbox import injections
from sandbox.auth0 import JWKS_DOCUMENT
from sandbox.flow_env import flow_env
from sandbox.journal import Fault
from sandbox.resources import DEPLOYMENT, POD
from sandbox.server import SandboxServer

SCALE = "/manage/deployments/{name}/scale"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        srv.controllers.stop()
        yield srv


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    env = flow_env(server.url, server.cluster)
    with httpx.Client(
        base_url=env["REMEDIATE_CONTROL_PLANE__BASE_URL"],
        headers={"Authorization": f"Bearer {env['REMEDIATE_CONTROL_PLANE__TOKEN']}"},
        trust_env=False,
    ) as c:
        yield c


def replicas(server: SandboxServer, name: str) -> int:
    deployment = server.cluster.store.get(DEPLOYMENT, "alphaswarm", name)
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


def cp_log(server: SandboxServer) -> str:
    pods, _ = server.cluster.store.list(POD, "alphaswarm-admin", labels="app=alphaswarm-cp")
    api = config.new_client_from_config_dict(server.kubeconfig())
    try:
        name = pods[0]["metadata"]["name"]
        return str(client.CoreV1Api(api).read_namespaced_pod_log(name, "alphaswarm-admin"))
    finally:
        api.close()


# -- control plane ---------------------------------------------------------------------------


def test_scale_needs_the_bearer_token(server: SandboxServer, http: httpx.Client) -> None:
    url = SCALE.format(name="alphaswarm-worker") + "?replicas=8"
    assert http.patch(url, headers={"Authorization": ""}).status_code == 401
    assert http.patch(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert replicas(server, "alphaswarm-worker") == 2
    assert server.cluster.control_plane.audit() == []


def test_scale_writes_the_deployment_audit_row_and_log_line(
    server: SandboxServer, http: httpx.Client
) -> None:
    response = http.patch(
        SCALE.format(name="alphaswarm-worker"),
        params={"replicas": 8},
        headers={"X-Request-Id": "req-1", "X-Actor": "remediate/flow-run-7"},
    )
    assert response.status_code == 200
    assert response.json()["replicas"] == {"before": 2, "after": 8}
    assert replicas(server, "alphaswarm-worker") == 8
    for _ in range(4):
        server.controllers.step()
    pods, _ = server.cluster.store.list(POD, "alphaswarm", labels="app=alphaswarm-worker")
    assert len(pods) == 8  # the controllers reacted to the store write

    rows = http.get("/manage/audit", params={"event": "workload_run"}).json()["items"]
    assert len(rows) == 1
    row = rows[0]
    assert row["action"] == "scale" and row["target"] == "alphaswarm-worker"
    assert (row["replicas_before"], row["replicas_after"]) == (2, 8)
    assert row["request_id"] == "req-1" and row["actor"] == "remediate/flow-run-7"
    assert row["ts"]
    lines = [line for line in cp_log(server).splitlines() if '"req-1"' in line]
    assert len(lines) == 1 and '"event":"workload_run"' in lines[0]
    assert server.cluster.journal.mutations(path="^/manage/")[0].method == "PATCH"


def test_scale_dry_run_changes_nothing(server: SandboxServer, http: httpx.Client) -> None:
    url = SCALE.format(name="alphaswarm-worker")
    response = http.patch(url, params={"replicas": 8, "dryRun": "All"})
    assert response.status_code == 200 and response.json()["dry_run"] is True
    assert replicas(server, "alphaswarm-worker") == 2
    assert server.cluster.control_plane.audit() == []


def test_scale_rejects_bad_input(http: httpx.Client) -> None:
    assert http.patch(SCALE.format(name="nope"), params={"replicas": 2}).status_code == 404
    assert (
        http.patch(SCALE.format(name="alphaswarm-worker"), params={"replicas": "x"}).status_code
        == 422
    )
    assert http.get("/manage/audit", headers={"Authorization": ""}).status_code == 401


def test_fault_injection_applies_to_the_control_plane(
    server: SandboxServer, http: httpx.Client
) -> None:
    server.cluster.faults.add(Fault(path="^/manage/", status=503, error_rate=1.0, times=1))
    url = SCALE.format(name="alphaswarm-worker") + "?replicas=4"
    assert http.patch(url).status_code == 503
    assert replicas(server, "alphaswarm-worker") == 2
    assert http.patch(url).status_code == 200
    assert replicas(server, "alphaswarm-worker") == 4
    assert [r.status for r in server.cluster.journal.requests("PATCH", "^/manage/")] == [503, 200]


def test_queue_backlog_rate_limits_the_control_plane(
    server: SandboxServer, http: httpx.Client
) -> None:
    injections.inject(server.cluster, "queue-backlog")
    url = SCALE.format(name="alphaswarm-worker") + "?replicas=8"
    for _ in range(injections.BACKLOG_RATE_LIMITED_CALLS):
        response = http.patch(url)
        assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert http.patch(url).status_code == 200
    assert len(server.cluster.control_plane.audit("workload_run")) == 1
    server.cluster.control_plane.backlog_rate_limited_calls = 0
    injections.inject(server.cluster, "queue-backlog")
    assert http.patch(url).status_code == 200


# -- JWKS and the incident API ---------------------------------------------------------------


def test_jwks_endpoint_follows_auth0(server: SandboxServer) -> None:
    jwks_url = flow_env(server.url, server.cluster)["REMEDIATE_AUTH__JWKS_URL"]
    with httpx.Client(trust_env=False) as c:
        assert c.get(jwks_url).json() == JWKS_DOCUMENT
        injections.inject(server.cluster, "jwks-503:auth0-down")
        assert c.get(jwks_url).status_code == 503


def test_incident_api_lists_and_injects(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as c:
        listed = c.get("/sandbox/v1/incidents").json()["items"]
        assert {i["name"] for i in listed} == set(injections.names())
        assert all(i["summary"] for i in listed)
        unknown = c.post("/sandbox/v1/incidents/nope")
        assert unknown.status_code == 400 and "redis-down" in unknown.json()["known"]
        assert c.post("/sandbox/v1/incidents/dns-failure").status_code == 201
        assert server.cluster.behaviour.external_dns is False
        assert c.delete("/sandbox/v1/incidents").status_code == 200
        assert server.cluster.behaviour.external_dns is True


# -- CLI -------------------------------------------------------------------------------------


def test_cli_inject_into_a_running_sandbox(server: SandboxServer, tmp_path: Path) -> None:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    runner = CliRunner()
    result = runner.invoke(
        app, ["sandbox", "inject", "redis-down", "--kubeconfig", str(kubeconfig)]
    )
    assert result.exit_code == 0, result.output
    assert "incident injected: redis-down (runbook F)" in result.output
    assert "redis-down" in server.cluster.effects

    result = runner.invoke(app, ["sandbox", "inject", "nope", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 2
    assert "unknown incident 'nope'" in result.output and "crashloop-single" in result.output


def test_cli_inject_without_a_sandbox(tmp_path: Path) -> None:
    with SandboxServer(seeded=False) as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    result = CliRunner().invoke(
        app, ["sandbox", "inject", "redis-down", "--kubeconfig", str(kubeconfig)]
    )
    assert result.exit_code == 1
    assert "no sandbox answers at" in result.output
    missing = CliRunner().invoke(
        app, ["sandbox", "inject", "redis-down", "--kubeconfig", str(tmp_path / "none.yaml")]
    )
    assert missing.exit_code == 1 and "kubeconfig not found" in missing.output


def test_cli_up_rejects_an_unknown_incident_before_starting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sandbox", "up", "--incident", "nope", "--kubeconfig", str(tmp_path / "k.yaml")]
    )
    assert result.exit_code == 2 and "postgres-down" in result.output
    assert not (tmp_path / "k.yaml").exists()


def test_cli_up_rejects_an_unknown_condition_before_starting(tmp_path: Path) -> None:
    kubeconfig = ["--kubeconfig", str(tmp_path / "k.yaml")]
    result = CliRunner().invoke(
        app, ["sandbox", "up", "--condition", "no-curl", "--condition", "spot-nodes", *kubeconfig]
    )
    assert result.exit_code == 2
    assert "unknown condition 'spot-nodes'" in result.output
    assert "managed-postgres" in result.output and "running-between-crashes" in result.output
    assert not (tmp_path / "k.yaml").exists()


def test_cli_up_refuses_an_incident_its_condition_rules_out(tmp_path: Path) -> None:
    options = ["--condition", "managed-postgres", "--incident", "postgres-down"]
    result = CliRunner().invoke(
        app, ["sandbox", "up", *options, "--kubeconfig", str(tmp_path / "k.yaml")]
    )
    assert result.exit_code == 2
    assert "Postgres is managed outside the cluster" in " ".join(result.output.split())
    assert "sandbox stopped" in result.output


def test_cli_up_with_conditions_serves_them_and_writes_the_flow_settings(tmp_path: Path) -> None:
    up = [sys.executable, "-m", "remediate.cli", "sandbox", "up"]
    options = ["--condition", "managed-postgres", "--condition", "running-between-crashes"]
    proc = subprocess.Popen(
        [*up, *options, "--kubeconfig", str(tmp_path / "k.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.startswith("The sandbox API is listening on") for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        url = lines[-1].split(" on ")[1].split(". ")[0]
        with httpx.Client(base_url=url, trust_env=False) as http:
            items = http.get("/sandbox/v1/conditions").json()["items"]
        assert [i["name"] for i in items if i["applied"]] == [
            "managed-postgres",
            "running-between-crashes",
        ]
        env = (tmp_path / "sandbox.env").read_text().splitlines()
        assert "REMEDIATE_CELERY__QUEUES='[\"backtests\"]'" in env
        assert "REMEDIATE_CELERY__QUEUE_DEPTH_ALARM=100" in env
        sourced = subprocess.run(
            ["sh", "-c", f"set -a; . {tmp_path / 'sandbox.env'}; echo $REMEDIATE_CELERY__QUEUES"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert sourced.stdout.strip() == '["backtests"]'
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "sandbox stopped" in out
