"""The rehearsal's monitoring loop with the real binaries: remediate.monitoring.start_loop runs
Debian's Prometheus and two clustered Alertmanagers against an in-process sandbox, and they
notify the real intake (`python -m deployments.intake`, on a SQLite store).

What it proves: the generated configuration passes promtool and amtool; Prometheus loads the
ten rules at rehearsal speed and scrapes every exporter job with the label handling of a cluster
(the ingress metric's own namespace becomes exported_namespace); the Alertmanagers are each
other's peers; and a symptom in the sandbox (JWKS answering 503) becomes a firing alert the
intake accepts with the bearer token from the file, and its end a resolved one.

A missing binary fails the module, as kubectl's absence fails tests/infra/test_manifests.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from sqlmodel import select

from remediate.monitoring import MonitoringLoop, missing_binaries, start_loop
from remediate.monitoring.configs import BLACKBOX_JOB, EXPORTERS, RECEIVER_FILE
from remediate.monitoring.rules import RULE_FILE, rule_groups
from remediate.processes import Child, answers, free_port
from sandbox.api_sandbox import INCIDENTS_PATH
from sandbox.auth0 import JWKS_PATH
from sandbox.blackbox_probe import CLIENT_URL
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import AlertReceipt
from store.schema import upgrade

SPEED = 60.0  # kube-prometheus-stack's 30 s scrape: 0.5 s; `for: 1m`: 1 s; group_interval: 5 s
TOKEN = "monitoring-loop-test-token"
WAIT_SECONDS = 45.0
T = TypeVar("T")


@dataclass
class Intake:
    url: str
    token_file: Path
    store_url: str


def eventually(check: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` and its last value."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s (last: {found!r})")
        time.sleep(0.2)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def sandbox_call(sandbox: SandboxServer, method: str, path: str) -> None:
    """Inject or heal through the sandbox's own API, on its event loop, as a rehearsal does."""
    request = urllib.request.Request(sandbox.url + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 201)


def query(loop: MonitoringLoop, promql: str) -> list[dict[str, Any]]:
    body = get(f"{loop.prometheus_url}/api/v1/query?query={urllib.parse.quote(promql)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(tick_seconds=0.2) as server:
        yield server


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    home = tmp_path_factory.mktemp("intake")
    token_file = home / "intake-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    store_url = f"sqlite:///{home / 'incidents.db'}"
    upgrade(store_url)
    port = free_port()
    env = {
        **os.environ,
        "REMEDIATE_INTAKE_TOKEN": TOKEN,
        "REMEDIATE_STORE__URL": store_url,
        # No Prefect here: the intake stores the alerts and its outbox keeps their runs waiting.
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
    }
    argv = [sys.executable, "-m", "deployments.intake", "--port", str(port)]
    child = Child("intake", argv, env, home / "intake.log").start()
    try:
        child.wait_until(answers(f"http://127.0.0.1:{port}/healthz"), 60, "health")
        yield Intake(f"http://127.0.0.1:{port}/api/v1/alerts", token_file, store_url)
    finally:
        child.stop()


@pytest.fixture(scope="module")
def loop(
    sandbox: SandboxServer, intake: Intake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonitoringLoop]:
    missing = missing_binaries()
    if missing:
        pytest.fail(
            f"{missing} not on the PATH: apt-get install prometheus prometheus-alertmanager"
        )
    state = tmp_path_factory.mktemp("monitoring")
    with ExitStack() as exits:
        yield start_loop(
            sandbox_url=sandbox.url,
            intake_url=intake.url,
            token_file=intake.token_file,
            state_dir=state,
            log_dir=state / "logs",
            speed=SPEED,
            probe_urls=(sandbox.url + JWKS_PATH, CLIENT_URL),
            exits=exits,
        )


def rule_names() -> set[str]:
    return {r["alert"] for g in rule_groups(RULE_FILE.read_text())["groups"] for r in g["rules"]}


def test_the_generated_configuration_passes_promtool_and_amtool(loop: MonitoringLoop) -> None:
    for argv in (
        ["promtool", "check", "config", str(loop.prometheus_config)],  # and the rule file it names
        ["amtool", "check-config", str(loop.alertmanager_config)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_runs_receiver_yaml_at_rehearsal_speed(
    loop: MonitoringLoop, intake: Intake
) -> None:
    config = yaml.safe_load(loop.alertmanager_config.read_text())
    (route,) = yaml.safe_load(RECEIVER_FILE.read_text())["route"]["routes"]
    (child,) = config["route"]["routes"]
    assert child["matchers"] == route["matchers"] and child["group_by"] == route["group_by"]
    # 30s, 5m, 4h at speed 60
    assert (child["group_wait"], child["group_interval"], child["repeat_interval"]) == (
        "500ms",
        "5s",
        "4m",
    )
    (webhook,) = next(r for r in config["receivers"] if r["name"] == child["receiver"])[
        "webhook_configs"
    ]
    assert webhook["url"] == intake.url and webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(intake.token_file)
    assert TOKEN not in loop.alertmanager_config.read_text()


def test_prometheus_loads_every_rule_at_rehearsal_speed(loop: MonitoringLoop) -> None:
    groups = get(f"{loop.prometheus_url}/api/v1/rules")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == rule_names()
    assert loaded["KubePodCrashLooping"]["duration"] == 15  # for: 15m
    assert loaded["PostgresqlDown"]["duration"] == 1  # for: 1m
    assert all(g["interval"] == 0.5 for g in groups)


def test_the_two_alertmanagers_are_peers(loop: MonitoringLoop) -> None:
    def peers() -> list[int] | None:
        counts = [
            len(get(f"{url}/api/v2/status")["cluster"]["peers"]) for url in loop.alertmanager_urls
        ]
        return counts if counts == [2, 2] else None

    eventually(peers, "two-peer cluster on both Alertmanagers")


def test_every_scrape_job_is_up(sandbox: SandboxServer, loop: MonitoringLoop) -> None:
    jobs = {e.job for e in EXPORTERS} | {BLACKBOX_JOB}

    def all_up() -> list[dict[str, Any]] | None:
        targets = get(f"{loop.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        return targets if up == jobs and all(t["health"] == "up" for t in targets) else None

    targets = eventually(all_up, f"scrape of every job up ({sorted(jobs)})")
    # The blackbox job's `instance` is the probed URL, as BlackboxProbeFailed names it.
    probed = {t["labels"]["instance"] for t in targets if t["labels"]["job"] == BLACKBOX_JOB}
    assert probed == {sandbox.url + JWKS_PATH, CLIENT_URL}


def test_labels_are_handled_as_in_a_cluster(loop: MonitoringLoop) -> None:
    """kube-state-metrics keeps the pods' own namespace; the ingress metric's namespace (the
    Ingress's) becomes exported_namespace beside the target's ingress-nginx."""
    restarts = 'kube_pod_container_status_restarts_total{job="kube-state-metrics"}'
    pods = eventually(
        lambda: query(loop, f"count by (namespace) ({restarts})"), "kube-state-metrics series"
    )
    assert "alphaswarm" in {s["metric"].get("namespace") for s in pods}
    requests = eventually(
        lambda: query(loop, 'nginx_ingress_controller_requests{ingress="alphaswarm"}'),
        "ingress-nginx series",
    )
    assert {(s["metric"]["namespace"], s["metric"]["exported_namespace"]) for s in requests} == {
        ("ingress-nginx", "alphaswarm")
    }


def receipts(intake: Intake, status: str, instance: str) -> list[AlertReceipt]:
    with session_for(intake.store_url) as session:
        rows = session.exec(
            select(AlertReceipt).where(
                AlertReceipt.alertname == "BlackboxProbeFailed", AlertReceipt.status == status
            )
        ).all()
    return [r for r in rows if r.labels.get("instance") == instance]


def test_a_failing_jwks_probe_reaches_the_intake_and_so_does_its_end(
    sandbox: SandboxServer, loop: MonitoringLoop, intake: Intake
) -> None:
    jwks = sandbox.url + JWKS_PATH
    eventually(lambda: query(loop, f'probe_success{{instance="{jwks}"}} == 1'), "passing probe")
    sandbox_call(sandbox, "POST", f"{INCIDENTS_PATH}/jwks-503")
    try:
        (fired,) = eventually(lambda: receipts(intake, "firing", jwks), "firing alert stored")
    finally:
        sandbox_call(sandbox, "DELETE", INCIDENTS_PATH)
    assert fired.labels["job"] == BLACKBOX_JOB and fired.receiver == "alphaswarm-remediate"
    (resolved,) = eventually(lambda: receipts(intake, "resolved", jwks), "resolved alert stored")
    assert resolved.fingerprint == fired.fingerprint and resolved.starts_at == fired.starts_at
