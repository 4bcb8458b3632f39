"""Killing and restarting the intake, and the Prefect server, in the middle of an alert storm
loses no accepted alert and starts no duplicate run.

Real processes on one migrated SQLite store: `prefect server start`, the deployments registered
by `python -m deployments.serve`, and `python -m deployments.intake`. Four senders POST what
Alertmanager would (single alerts, whole groups re-sent, every payload twice as two HA replicas
do) about ten incidents, retrying on a connection error or a 5xx as Alertmanager does. Meanwhile:

    incidents 0-3 fire ─► SIGKILL the intake, a new one on the same port
    incidents 4-5 fire ─► SIGKILL the Prefect server
    incidents 6-9 fire (their runs wait in the outbox) ─► SIGKILL the intake again, a new one
                       ─► the Prefect server again, on the same port and PREFECT_HOME

Then every alert that got a 2xx is in `alert_receipt`, the outbox is delivered within a bound,
and Prefect holds exactly one triage run per incident, the one the outbox names.

The runner that registered the deployments is stopped before the storm, so the runs stay
scheduled: what is counted is the runs created, not what they did (tests/stack/test_stack_e2e.py
follows a run to its mitigation).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlmodel import select

from remediate.processes import free_port
from store.engine import dispose_all, session_for
from store.models import AlertReceipt, Incident, TriageOutbox
from store.schema import upgrade
from tasks.triggers.outbox import TRIGGER_TAG
from tests.stack.storm import (
    INCIDENTS,
    VENV_BIN,
    Processes,
    Storm,
    alerts_of,
    identity,
)
from tests.stack.up import flow_runs

pytestmark = pytest.mark.timeout(420)

PREFECT_READY_SECONDS = 120.0
INTAKE_READY_SECONDS = 60.0
# The outbox backs off to 30 s while Prefect is away; then one poll of the dispatcher.
DELIVERED_WITHIN_SECONDS = 60.0


# -- the test ----------------------------------------------------------------------------------


def test_killing_the_intake_and_prefect_mid_storm_loses_no_alert_and_starts_no_duplicate_run(
    processes: Processes,
) -> None:
    store = processes.env["REMEDIATE_STORE__URL"]
    upgrade(store)
    dispose_all()

    prefect_port, intake_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    prefect = [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    prefect += ["--port", str(prefect_port), "--no-ui", "--no-services"]
    intake = [str(VENV_BIN / "python"), "-m", "deployments.intake", "--host", "127.0.0.1"]
    intake += ["--port", str(intake_port)]
    intake_url = f"http://127.0.0.1:{intake_port}"

    def start_prefect() -> None:
        processes.launch("prefect-server", prefect)
        processes.wait_for("prefect-server", f"{api}/health", PREFECT_READY_SECONDS)

    def start_intake() -> None:
        processes.launch("intake", intake, PREFECT_API_URL=api)
        processes.wait_for("intake", f"{intake_url}/healthz", INTAKE_READY_SECONDS)

    t0 = time.monotonic()

    def say(what: str) -> None:
        print(f"{time.monotonic() - t0:6.1f} s  {what}", flush=True)

    start_prefect()
    say("Prefect server up")
    processes.launch(
        "serve", [str(VENV_BIN / "python"), "-m", "deployments.serve"], PREFECT_API_URL=api
    )
    start_intake()
    say("intake up")
    processes.wait_for("serve", f"{api}/deployments/name/triage/triage", 120)
    processes.stop("serve")  # the deployment stays; its runs stay scheduled
    say("deployments registered")

    storm = Storm([f"{intake_url}/api/v1/alerts"])
    storm.fire(0, 1, 2, 3)
    began = time.monotonic()
    with storm.blowing():
        storm.wait_delivered(40)
        processes.kill("intake")
        say(f"intake killed after {storm.delivered} payloads")
        start_intake()
        say("intake restarted")
        storm.fire(4, 5)
        storm.wait_delivered(40)
        processes.kill("prefect-server")
        say(f"Prefect server killed after {storm.delivered} payloads")
        storm.fire(6, 7, 8, 9)
        storm.wait_delivered(60)
        processes.kill("intake")  # with runs owed and Prefect away
        say(f"intake killed again after {storm.delivered} payloads")
        start_intake()
        say("intake restarted")
        storm.wait_delivered(40)
        start_prefect()
        say("Prefect server restarted")
        storm.wait_delivered(40)
    storm_seconds = time.monotonic() - began
    say("storm over")

    assert not storm.failures, storm.failures[:5]
    assert storm.answers[0] > 0, "no sender ever met a dead intake: the kills came too late"
    print(
        f"storm: {storm.delivered} payloads accepted in {storm_seconds:.1f} s, "
        f"{storm.retries} retries, answers {dict(storm.answers)}"
    )

    # Every alert that got a 2xx is stored.
    with session_for(store) as s:
        stored = {(r.fingerprint, r.status, r.starts_at) for r in s.exec(select(AlertReceipt))}
    expected = {identity(a) for i in range(INCIDENTS) for a in alerts_of(i)}
    assert storm.accepted == expected  # every alert was sent, and acknowledged at least once
    assert storm.accepted <= stored, sorted(storm.accepted - stored)

    # Every run owed is delivered, once Prefect is back.
    deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
    while True:
        with session_for(store) as s:
            owed = list(s.exec(select(TriageOutbox).order_by(TriageOutbox.id)))
            incidents = list(s.exec(select(Incident).order_by(Incident.id)))
        if owed and all(row.delivered_at is not None for row in owed):
            say("outbox delivered")
            break
        assert time.monotonic() < deadline, [(r.incident_id, r.last_error) for r in owed]
        time.sleep(0.5)
    dispose_all()

    assert any(row.attempts for row in owed), "no run ever waited for the Prefect server"

    # One incident per pod, one outbox row per incident, one Prefect run per incident.
    assert len(incidents) == INCIDENTS
    assert sorted(row.incident_id or 0 for row in owed) == [i.id for i in incidents]
    runs = flow_runs(api, tags={"all_": [TRIGGER_TAG]})
    per_incident = Counter(
        tag for run in runs for tag in run["tags"] if tag.startswith("incident-")
    )
    assert per_incident == Counter({f"incident-{i.id}": 1 for i in incidents}), per_incident
    assert {run["id"] for run in runs} == {row.flow_run_id for row in owed}
    assert {i.triage_flow_run_id for i in incidents} == {row.flow_run_id for row in owed}
