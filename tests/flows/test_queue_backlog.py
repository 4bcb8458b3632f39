"""Runbook C with real Celery: a real redis-server, one real worker process per ready
alphaswarm-worker pod, the `queue-backlog` incident filling the real queue, and the flow (alone,
then as triage's subflow) scaling the workers to 8 through the real Prefect engine.

Judged by the sandbox alone: its journal (the control plane's PATCH attempts, 429s then one 200,
and no other write), the control plane's audit rows (one scale), the broker (the queue drains to
empty) and the worker pool (8 real processes answered)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import SecretStr

import flows.queue_backlog
from flows.queue_backlog import remediate_queue_backlog
from flows.triage import TriageOutcome, VerifyPolicy, triage
from sandbox import injections
from sandbox.celery_backlog import REHEARSAL_QUEUE_DEPTH_ALARM, backlog_hook
from sandbox.flow_env import flow_env
from sandbox.resources import DEPLOYMENT
from sandbox.server import SandboxServer
from sandbox.worker_pool import ROLE as WORKER_ROLE
from sandbox.worker_pool import WorkerPool
from tasks.adapters.errors import PermanentError
from tasks.adapters.exec_commands import secret_on_stdin
from tasks.adapters.workers import CeleryWorkers
from tasks.changes.models import ActionKind, ChangeStatus
from tasks.connection import close_all
from tasks.models.alerts import parse_alertmanager
from tasks.models.diagnosis import Action, Scenario
from tasks.models.outcome import OutcomeStatus
from tasks.probes.workload import how_queue_is_read, queue_reader
from tasks.settings import CeleryBroker
from tests.celery_plugin import assert_gone, wait_until
from tests.flows.sandbox_settings import alert_payload
from tests.flows.sandbox_state import assert_flow_never_sleeps, fail_or_slow_one_request_in_ten

NS, WORKER = "alphaswarm", "alphaswarm-worker"
QUEUE = CeleryBroker().queues[0]
CONTROL_PLANE_SCALE = ("PATCH", f"/manage/deployments/{WORKER}/scale")
KUBE_SCALE = ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{WORKER}/scale")
# Twice the incident's default burst: two workers drain ~25 tasks/s, so the queue stays above
# the rehearsal alarm (100) for several seconds of probing, even with faults slowing the run.
BACKLOG = 400
REHEARSAL = VerifyPolicy(attempts=400, delay_seconds=0.1)


@pytest.fixture
def celery_sandbox(
    prefect_harness: None, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """A seeded sandbox (alphaswarm-worker at 2) with real workers, and the flows' settings
    (kubeconfig, control plane, JWKS, broker) pointed at it."""
    pool = WorkerPool(redis_url, log_dir=tmp_path / "workers", grace_seconds=2.0)
    with SandboxServer(worker_pool=pool, tick_seconds=0.05) as server:
        server.cluster.queue_backlog_hook = backlog_hook(redis_url, count=BACKLOG)
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        for key, value in flow_env(server.url, server.cluster, kubeconfig, redis_url).items():
            monkeypatch.setenv(key, value)
        try:
            yield server
        finally:
            close_all()
    assert_gone(WORKER_ROLE)


@pytest.fixture
def broker(redis_url: str) -> Iterator[CeleryWorkers]:
    with CeleryWorkers(CeleryBroker(broker_url=SecretStr(redis_url))) as adapter:
        yield adapter


def wait_for_online(broker: CeleryWorkers, count: int) -> None:
    wait_until(
        lambda: broker.workers_online(timeout=0.5).count == count,
        timeout=40,
        interval=0.2,
        what=f"{count} workers online",
    )


def inject_backlog(sandbox: SandboxServer, broker: CeleryWorkers) -> None:
    """The burst lands while the two workers may still be booting: C does not need them up."""
    injections.inject(sandbox.cluster, "queue-backlog")
    assert broker.queue_depth(QUEUE) > REHEARSAL_QUEUE_DEPTH_ALARM
    sandbox.cluster.journal.clear()


def replicas(sandbox: SandboxServer) -> int:
    found = sandbox.cluster.store.get(DEPLOYMENT, NS, WORKER)
    assert found is not None
    return int(found["spec"]["replicas"])


def writes(sandbox: SandboxServer, include_dry_run: bool = False) -> list[tuple[str, str]]:
    return [
        (r.method, r.path)
        for r in sandbox.cluster.journal.mutations(include_dry_run=include_dry_run)
    ]


def attempts(sandbox: SandboxServer, call: tuple[str, str]) -> list[int]:
    """The statuses of every attempt of `call` that reached the sandbox, dry runs excluded."""
    method, path = call
    return [r.status for r in sandbox.cluster.journal.requests(method, path + "$") if not r.dry_run]


def scale_rows(sandbox: SandboxServer) -> list[Any]:
    return [
        r for r in sandbox.cluster.control_plane.rows if r.action == "scale" and r.target == WORKER
    ]


def assert_scaled_once_and_drained(sandbox: SandboxServer, broker: CeleryWorkers) -> None:
    """8 replicas, 8 real worker processes answered, the real queue is empty."""
    assert replicas(sandbox) == 8
    pool = sandbox.worker_pool
    assert pool is not None
    wait_until(lambda: len(pool.hostnames()) == 8, timeout=10, what="8 worker processes")
    assert broker.workers_online(timeout=1.0).count == 8
    assert broker.queue_depth(QUEUE) == 0


def apply_params() -> dict[str, Any]:
    return {"dry_run": False, "verify_attempts": 400, "verify_delay_seconds": 0.1}


def test_the_flow_never_sleeps() -> None:
    assert_flow_never_sleeps(flows.queue_backlog)


def test_c_scales_through_the_control_plane_once_and_the_real_queue_drains(
    celery_sandbox: SandboxServer, broker: CeleryWorkers
) -> None:
    inject_backlog(celery_sandbox, broker)

    outcome = remediate_queue_backlog(**apply_params())

    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    assert outcome.diagnosis is not None and outcome.diagnosis.action is Action.SCALE_WORKERS
    (change,) = outcome.changes
    assert change.action is ActionKind.CONTROL_PLANE_SCALE
    assert change.status is ChangeStatus.APPLIED and change.after["auditId"]
    assert all(v.passed for v in outcome.verification)
    # The control plane rate-limited twice (retried), then took the scale: one audit row.
    assert attempts(celery_sandbox, CONTROL_PLANE_SCALE) == [429, 429, 200]
    assert writes(celery_sandbox) == [CONTROL_PLANE_SCALE]
    assert attempts(celery_sandbox, KUBE_SCALE) == []
    (row,) = scale_rows(celery_sandbox)
    assert (row.replicas_before, row.replicas_after) == (2, 8)
    assert row.request_id == change.after["auditId"]
    assert_scaled_once_and_drained(celery_sandbox, broker)


def test_a_control_plane_refusing_the_token_falls_back_to_the_kubernetes_scale_once(
    celery_sandbox: SandboxServer, broker: CeleryWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_CONTROL_PLANE__TOKEN", "not-the-token")
    inject_backlog(celery_sandbox, broker)

    outcome = remediate_queue_backlog(**apply_params())

    assert outcome.status is OutcomeStatus.MITIGATED, outcome.message
    (change,) = outcome.changes
    assert change.action is ActionKind.SCALE and change.status is ChangeStatus.APPLIED
    # 401 is permanent: one attempt, no retry; the scale subresource took it, once.
    assert attempts(celery_sandbox, CONTROL_PLANE_SCALE) == [401]
    assert writes(celery_sandbox) == [KUBE_SCALE]
    assert scale_rows(celery_sandbox) == []
    assert_scaled_once_and_drained(celery_sandbox, broker)


# -- triage, end to end ---------------------------------------------------------------------------


def run_triage(*, apply: bool, alerts: str = "queue-backlog") -> TriageOutcome:
    return triage(
        alerts=parse_alertmanager(alert_payload(alerts)), dry_run=not apply, verify=REHEARSAL
    )


def test_triage_picks_c_and_scales_the_workers_once(
    celery_sandbox: SandboxServer, broker: CeleryWorkers
) -> None:
    inject_backlog(celery_sandbox, broker)
    started = time.monotonic()

    result = run_triage(apply=True)

    assert result.scenario is Scenario.QUEUE_BACKLOG, result.reason
    assert result.model_dump(mode="json")["scenario"] == "C"
    assert not result.escalate and result.outcome is not None
    assert result.outcome.status is OutcomeStatus.MITIGATED, result.outcome.message
    assert len(result.plan) == 1 and result.plan[0].startswith("applied: PATCH /manage")
    assert attempts(celery_sandbox, CONTROL_PLANE_SCALE) == [429, 429, 200]
    assert writes(celery_sandbox) == [CONTROL_PLANE_SCALE]
    assert len(scale_rows(celery_sandbox)) == 1
    assert_scaled_once_and_drained(celery_sandbox, broker)
    assert time.monotonic() - started < 40


def test_triage_dry_run_plans_c_and_changes_nothing(
    celery_sandbox: SandboxServer, broker: CeleryWorkers
) -> None:
    inject_backlog(celery_sandbox, broker)

    result = run_triage(apply=False)

    assert result.scenario is Scenario.QUEUE_BACKLOG and result.dry_run and not result.escalate
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.PLANNED
    (plan,) = result.outcome.changes
    assert plan.status is ChangeStatus.PLANNED and plan.after["replicas"] == 8
    assert result.plan == (f"planned: {plan.summary}",)
    assert writes(celery_sandbox) == []
    assert set(writes(celery_sandbox, include_dry_run=True)) <= {KUBE_SCALE}
    assert scale_rows(celery_sandbox) == [] and replicas(celery_sandbox) == 2


def test_with_one_request_in_ten_failing_or_slow_the_scale_lands_exactly_once(
    celery_sandbox: SandboxServer, broker: CeleryWorkers
) -> None:
    inject_backlog(celery_sandbox, broker)
    fail_or_slow_one_request_in_ten(celery_sandbox, seed=31)

    result = run_triage(apply=True)

    assert result.scenario is Scenario.QUEUE_BACKLOG, result.reason
    assert result.outcome is not None
    assert result.outcome.status is OutcomeStatus.MITIGATED, result.outcome.message
    assert 503 in [r.status for r in celery_sandbox.cluster.journal.requests()]
    effective = [
        s
        for call in (CONTROL_PLANE_SCALE, KUBE_SCALE)
        for s in attempts(celery_sandbox, call)
        if 200 <= s < 300
    ]
    assert len(effective) == 1
    assert set(writes(celery_sandbox)) <= {CONTROL_PLANE_SCALE, KUBE_SCALE}
    # Through the control plane (one audit row) unless its retries ran out (the fallback, none).
    assert len(scale_rows(celery_sandbox)) == writes(celery_sandbox).count(CONTROL_PLANE_SCALE)
    assert_scaled_once_and_drained(celery_sandbox, broker)


def test_a_redis_outage_with_a_real_broker_never_scales_or_restarts_workers(
    celery_sandbox: SandboxServer, broker: CeleryWorkers
) -> None:
    """Triage probes the real broker too, yet the platform comes first: Redis is fixed (F)."""
    wait_for_online(broker, 2)
    injections.inject(celery_sandbox.cluster, "redis-down")
    celery_sandbox.controllers.step()
    celery_sandbox.cluster.journal.clear()

    result = run_triage(apply=True, alerts="redis-down-worker-crashes")

    assert result.scenario is Scenario.STATEFUL_FAILOVER, result.reason
    touched = [p for _, p in writes(celery_sandbox, include_dry_run=True)]
    assert not any(WORKER in p for p in touched), touched
    assert attempts(celery_sandbox, CONTROL_PLANE_SCALE) == []
    assert replicas(celery_sandbox) == 2


def test_triage_with_an_unreachable_broker_records_it_and_does_not_crash(
    celery_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_CELERY__BROKER_URL", "redis://127.0.0.1:1/0")
    close_all()

    result = triage(dry_run=True, verify=REHEARSAL)

    assert result.scenario is None and result.outcome is None
    assert any(
        line.startswith("queue: inconclusive") and "could not be read" in line
        for line in result.decision.inconclusive
    ), result.decision


# -- C's probe: the configured app, and every priority lane ------------------------------------


def exec_argvs(sandbox: SandboxServer, pod: str) -> list[list[str]]:
    return [r.query["command"] for r in sandbox.cluster.journal.requests(path=f"{pod}.*/exec$")]


def test_the_in_pod_inspect_runs_the_configured_celery_app(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_CELERY__APP", "acme.worker.celery_app")
    sandbox.cluster.journal.clear()
    outcome = remediate_queue_backlog(dry_run=True)
    assert outcome.status is OutcomeStatus.NOTHING_TO_DO, outcome.message
    assert exec_argvs(sandbox, WORKER) == [
        ["celery", "-A", "acme.worker.celery_app", "inspect", "active"]
    ]


LANES = {0: "lanes", 3: "lanes\x06\x163", 6: "lanes\x06\x166", 9: "lanes\x06\x169"}


def test_without_a_broker_the_depth_counts_every_priority_lane_as_the_broker_does(
    celery_sandbox: SandboxServer,
    broker: CeleryWorkers,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Celery's Redis transport keeps each priority step of a queue in its own list (kombu:
    `queue`, `queue\\x06\\x163`, ...6, ...9). `redis-cli llen` in the Redis pod, the depth
    without a broker connection, counts them all, as the broker adapter and the evidence line
    say, logged in with the Redis password (on stdin)."""
    app = Celery("lanes", broker=redis_url, set_as_current=False)
    sent = {0: 3, 3: 1, 6: 2, 9: 4}
    try:
        for priority, count in sent.items():
            for _ in range(count):
                app.send_task("alphaswarm.tasks.backtest", queue="lanes", priority=priority)
    finally:
        app.close()
    with redis.Redis.from_url(redis_url) as r:
        assert {lane: r.llen(lane) for lane in LANES.values()} == {
            LANES[p]: n for p, n in sent.items()
        }
    assert broker.queue_depth("lanes") == sum(sent.values())
    monkeypatch.delenv("REMEDIATE_CELERY__BROKER_URL")
    celery_sandbox.cluster.journal.clear()

    assert how_queue_is_read().startswith("redis-cli in alphaswarm/redis-master-0")
    assert queue_reader().queue_depth("lanes") == sum(sent.values())
    script = secret_on_stdin("REDISCLI_AUTH")
    assert exec_argvs(celery_sandbox, "redis-master-0") == [
        ["sh", "-c", script, "redis-cli", "llen", lane] for lane in LANES.values()
    ]
    monkeypatch.delenv("REMEDIATE_REDIS__PASSWORD")
    with pytest.raises(PermanentError, match="NOAUTH Authentication required"):
        queue_reader().queue_depth("lanes")
