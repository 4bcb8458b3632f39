"""Scale-out on one machine, the way it runs on many: Prefect's server on PostgreSQL, the
incident store on PostgreSQL, two intake replicas behind one address, and two process workers
on one work pool running the triage runs. An alert storm through both replicas, one of them
SIGKILLed mid-storm, gives every accepted alert stored, exactly one triage run per incident,
and each run executed by exactly one worker.

Alertmanager reaches the intake through a Service: a delivery that fails on one replica is
retried, and the Service sends the retry to a replica that is still up. The senders do the
same here (the next replica in turn after a connection error or a 5xx).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from deployments.table import TRIAGE_DEPLOYMENT
from flows.triage import triage
from remediate.processes import free_port
from sandbox.flow_env import flow_env
from sandbox.server import SandboxServer
from store.engine import dispose_all, session_for
from store.models import AlertReceipt, Incident, TriageOutbox
from store.schema import upgrade
from tasks.triggers.outbox import TRIGGER_TAG
from tests.postgres_plugin import fresh_database
from tests.stack.storm import INCIDENTS, VENV_BIN, Processes, Storm, alerts_of, identity
from tests.stack.up import api_call, flow_runs

pytestmark = pytest.mark.timeout(900)

POOL = "scale-out"
WORKERS = ("worker-1", "worker-2")
READY_SECONDS = 180.0
RUNS_END_WITHIN_SECONDS = 420.0
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@pytest.fixture
def postgres_databases(postgres_server_url: str) -> Iterator[tuple[str, str]]:
    """(the incident store's URL, Prefect's URL): two empty databases on the test server."""
    with fresh_database(postgres_server_url) as store, fresh_database(postgres_server_url) as pf:
        yield store, pf.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
    dispose_all()


def executed_by(processes: Processes) -> dict[str, list[str]]:
    """Each worker's log: the flow runs it started. Both workers may try to submit a run; the
    server lets one move it to Pending and tells the other to abort."""
    found = {}
    for worker in WORKERS:
        log = (processes.folder / f"{worker}-1.log").read_text(errors="replace")
        tried = re.findall(r"submitting flow run '([0-9a-f-]+)'", log)
        aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]+)'", log))
        found[worker] = [run for run in tried if run not in aborted]
    return found


def test_a_storm_through_two_intakes_with_one_killed_gives_one_run_per_incident(
    processes: Processes, postgres_databases: tuple[str, str], tmp_path: Path
) -> None:
    store, prefect_db = postgres_databases
    upgrade(store)
    dispose_all()
    processes.env["REMEDIATE_STORE__URL"] = store

    with SandboxServer(tick_seconds=0.1) as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        processes.env.update(flow_env(sandbox.url, sandbox.cluster, kubeconfig))

        prefect_port = free_port()
        api = f"http://127.0.0.1:{prefect_port}/api"
        server = [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
        server += ["--port", str(prefect_port), "--no-ui"]
        processes.launch("prefect-server", server, PREFECT_API_DATABASE_CONNECTION_URL=prefect_db)
        processes.wait_for("prefect-server", f"{api}/health", READY_SECONDS)

        # One work pool, the triage deployment on it, two workers polling it.
        api_call(api, "POST", "/work_pools/", json={"name": POOL, "type": "process"})
        register_triage(api)
        for worker in WORKERS:
            processes.launch(
                worker,
                [str(VENV_BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", worker],
                PREFECT_API_URL=api,
                PREFECT_WORKER_QUERY_SECONDS="1",
            )

        ports = [free_port(), free_port()]
        for n, port in enumerate(ports, 1):
            intake = [str(VENV_BIN / "python"), "-m", "deployments.intake"]
            processes.launch(f"intake-{n}", [*intake, "--port", str(port)], PREFECT_API_URL=api)
        for n, port in enumerate(ports, 1):
            processes.wait_for(f"intake-{n}", f"http://127.0.0.1:{port}/healthz", READY_SECONDS)

        storm = Storm([f"http://127.0.0.1:{port}/api/v1/alerts" for port in ports])
        storm.fire(*range(INCIDENTS // 2))
        with storm.blowing():
            storm.wait_delivered(40)
            processes.kill("intake-1")  # no shutdown, no last commit
            storm.fire(*range(INCIDENTS // 2, INCIDENTS))
            storm.wait_delivered(80)
        assert not storm.failures, storm.failures[:5]
        assert storm.answers[0] > 0, "no sender ever met the dead replica: the kill came too late"

        runs = wait_for_runs(api)
    dispose_all()

    # Every alert that got a 2xx is stored, and every alert was acknowledged.
    with session_for(store) as s:
        stored = {(r.fingerprint, r.status, r.starts_at) for r in s.exec(select(AlertReceipt))}
        owed = list(s.exec(select(TriageOutbox)))
        incidents = list(s.exec(select(Incident)))
    assert storm.accepted == {identity(a) for i in range(INCIDENTS) for a in alerts_of(i)}
    assert storm.accepted <= stored, sorted(storm.accepted - stored)

    # One incident per pod, one Prefect run per incident, the one its outbox row names.
    assert len(incidents) == INCIDENTS
    per_incident = Counter(t for r in runs for t in r["tags"] if t.startswith("incident-"))
    assert per_incident == Counter({f"incident-{i.id}": 1 for i in incidents}), per_incident
    assert {r["id"] for r in runs} == {row.flow_run_id for row in owed}

    # Each run was executed, by exactly one of the two workers.
    assert {r["state_type"] for r in runs} == {"COMPLETED"}, [r["state_name"] for r in runs]
    taken = executed_by(processes)
    every = [run_id for ids in taken.values() for run_id in ids]
    assert sorted(every) == sorted(r["id"] for r in runs), taken
    print({worker: len(ids) for worker, ids in taken.items()})


def register_triage(api: str) -> None:
    """The triage deployment (the intake's target) on the process pool, as `prefect deploy`
    registers it from deployments/prefect.yaml, its code importable where the workers run."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.types.entrypoint import EntrypointType

    with temporary_settings({PREFECT_API_URL: api}):
        deployment = triage.to_deployment(
            name=TRIAGE_DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH
        )
        deployment.apply(work_pool_name=POOL)


def wait_for_runs(api: str) -> list[dict[str, Any]]:
    """The intake's triage runs, once one exists per incident and every one has ended."""
    deadline = time.monotonic() + RUNS_END_WITHIN_SECONDS
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = flow_runs(api, tags={"all_": [TRIGGER_TAG]})
        if len(runs) >= INCIDENTS and all(r["state_type"] in FINAL for r in runs):
            return runs
        time.sleep(1)
    states = Counter(r["state_type"] for r in runs)
    raise AssertionError(f"{len(runs)} runs, states {dict(states)} after the storm")
