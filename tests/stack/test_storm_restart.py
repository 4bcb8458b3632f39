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

import hashlib
import itertools
import json
import os
import queue
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from remediate.processes import Child, ProcessFailed, answers, free_port
from sandbox.alerts import crashloop_alert, webhook
from store.engine import dispose_all, session_for
from store.models import AlertReceipt, Incident, TriageOutbox
from store.schema import upgrade
from tasks.triggers.outbox import TRIGGER_TAG
from tests.stack.up import flow_runs

pytestmark = pytest.mark.timeout(420)

TOKEN = "storm-restart-intake-token"
INCIDENTS = 10
SENDERS = 4
PREFECT_READY_SECONDS = 120.0
INTAKE_READY_SECONDS = 60.0
# The outbox backs off to 30 s while Prefect is away; then one poll of the dispatcher.
DELIVERED_WITHIN_SECONDS = 60.0
ANSWERED_WITHIN_SECONDS = 60.0  # a payload retried for longer than this is a failure
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


# -- what Alertmanager sends -------------------------------------------------------------------


def alerts_of(incident: int) -> list[dict[str, Any]]:
    """Two alerts about one pod (one incident): crash-looping, and not ready."""
    pod = f"alphaswarm-batch-{incident}"  # a bare pod, not a Deployment's: an incident each
    crashing = crashloop_alert("alphaswarm", pod, starts_at=T0 + timedelta(minutes=incident))
    not_ready = json.loads(json.dumps(crashing))
    not_ready["labels"]["alertname"] = "KubePodNotReady"
    not_ready["fingerprint"] = hashlib.sha256(pod.encode()).hexdigest()[:16]
    return [crashing, not_ready]


def identity(alert: dict[str, Any]) -> tuple[str, str, datetime]:
    return alert["fingerprint"], alert["status"], datetime.fromisoformat(alert["startsAt"])


@dataclass
class Storm:
    """Senders POSTing payloads about the firing incidents until told to stop."""

    url: str
    firing: list[int] = field(default_factory=list)
    accepted: set[tuple[str, str, datetime]] = field(default_factory=set)
    answers: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    delivered: int = 0  # payloads answered 2xx
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    work: queue.Queue[dict[str, Any] | None] = field(default_factory=lambda: queue.Queue(8))

    def fire(self, *incidents: int) -> None:
        with self.lock:
            self.firing.extend(incidents)

    def wait_delivered(self, more: int, timeout: float = 60.0) -> None:
        target = self.delivered + more
        deadline = time.monotonic() + timeout
        while self.delivered < target:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"the storm stalled at {self.delivered} payloads"
            time.sleep(0.05)

    def produce(self) -> None:
        """Each notification twice (two Alertmanager replicas): one incident's alerts, or the
        whole group re-sent, as each repeat interval does."""
        pick = random.Random(9)
        while not self.stopping.is_set():
            with self.lock:
                firing = list(self.firing)
            chosen = firing if pick.random() < 0.4 else [pick.choice(firing)]
            body = webhook(list(itertools.chain.from_iterable(alerts_of(i) for i in chosen)))
            for _ in range(2):
                while not self.stopping.is_set():
                    try:
                        self.work.put(body, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        for _ in range(SENDERS):
            self.work.put(None)

    def send(self) -> None:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            while (body := self.work.get()) is not None:
                self.deliver(client, body)

    def deliver(self, client: httpx.Client, body: dict[str, Any]) -> None:
        """POST until a 2xx, as Alertmanager retries: on a connection error and on a 5xx."""
        deadline = time.monotonic() + ANSWERED_WITHIN_SECONDS
        while time.monotonic() < deadline:
            try:
                answer = client.post(self.url, json=body)
            except httpx.TransportError:
                status = 0  # refused, reset, or cut mid-answer: the intake is down
            else:
                status = answer.status_code
            with self.lock:
                self.answers[status] += 1
                if 200 <= status < 300:
                    self.accepted.update(identity(a) for a in body["alerts"])
                    self.delivered += 1
                    return
                if 400 <= status < 500:
                    self.failures.append(f"{status}: {answer.text}")
                    return
                self.retries += 1
            time.sleep(0.1)
        with self.lock:
            self.failures.append(f"no 2xx within {ANSWERED_WITHIN_SECONDS:.0f} s")


# -- the processes -----------------------------------------------------------------------------


VENV_BIN = Path(sys.executable).parent


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):  # gone meanwhile
                stat = (entry / "stat").read_text()
                tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Processes:
    """The children of this test (`remediate up`'s own kind: each in its own session, its output
    in a log); all of them carry `marker` in their environment, so none outlives the test
    unseen."""

    folder: Path
    env: dict[str, str]
    marker: str
    stack: ExitStack
    running: dict[str, Child] = field(default_factory=dict)
    generation: Counter[str] = field(default_factory=Counter)

    def launch(self, name: str, argv: list[str], **env: str) -> Child:
        self.generation[name] += 1
        log = self.folder / f"{name}-{self.generation[name]}.log"
        child = Child(name, argv, {**self.env, **env}, log).start()
        self.stack.callback(child.stop)
        self.running[name] = child
        return child

    def wait_for(self, name: str, url: str, timeout: float) -> None:
        try:
            self.running[name].wait_until(answers(url), timeout, url)
        except ProcessFailed as exc:
            pytest.fail(str(exc))

    def stop(self, name: str) -> None:
        self.running.pop(name).stop()

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything it started: no shutdown, no last commit."""
        process = self.running.pop(name).process
        assert process is not None
        for pid in (process.pid, *descendants(process.pid)):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)

    def leftovers(self) -> list[str]:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if self.marker.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
        return found


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    marker = f"REMEDIATE_TEST_STORM={uuid.uuid4().hex}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "REMEDIATE_", "PYTEST_"))
    }
    env.update(
        dict([marker.split("=", 1)]),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        REMEDIATE_STORE__URL=f"sqlite:///{tmp_path / 'incidents.db'}",
        REMEDIATE_INCIDENTS__REPORTS_DIR=str(tmp_path / "incidents"),
        REMEDIATE_INTAKE_TOKEN=TOKEN,
        REMEDIATE_INTAKE__APPLY="false",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    with ExitStack() as stack:
        running = Processes(tmp_path, env, marker, stack)
        yield running
    deadline = time.monotonic() + 10
    while running.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running.leftovers() == []


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

    storm = Storm(f"{intake_url}/api/v1/alerts")
    storm.fire(0, 1, 2, 3)
    threads = [threading.Thread(target=storm.produce, name="alertmanager")]
    threads += [threading.Thread(target=storm.send, name=f"sender-{i}") for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    try:
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
    finally:
        storm.stopping.set()
        for thread in threads:
            thread.join(timeout=ANSWERED_WITHIN_SECONDS + 10)
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
