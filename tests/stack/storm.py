"""What the storm tests share: the alerts Alertmanager sends about ten incidents, senders that
deliver them as Alertmanager does (every notification twice, retried on a connection error or a
5xx), and the real processes of a test (the Prefect server, intakes, workers), each in its own
session with its output in a log, none left running after the test."""

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
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from remediate.processes import Child, ProcessFailed, answers
from sandbox.alerts import crashloop_alert, webhook
from tests.prefect_plugin import seed_prefect_home

TOKEN = "storm-restart-intake-token"
INCIDENTS = 10
SENDERS = 4
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
    """Senders POSTing payloads about the firing incidents until told to stop.

    With several replicas each delivery goes to the next in turn, as a Service spreads them, and
    so does its retry after a failure: a dead replica costs a retry, never an alert."""

    urls: list[str]  # the intake replicas behind Alertmanager's one address
    firing: list[int] = field(default_factory=list)
    accepted: set[tuple[str, str, datetime]] = field(default_factory=set)
    answers: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    delivered: int = 0  # payloads answered 2xx
    turn: int = 0
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

    @contextmanager
    def blowing(self) -> Iterator[Storm]:
        """The producer and the senders at work until the block ends."""
        threads = [threading.Thread(target=self.produce, name="alertmanager")]
        threads += [threading.Thread(target=self.send, name=f"sender-{i}") for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join(timeout=ANSWERED_WITHIN_SECONDS + 10)

    def send(self) -> None:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            while (body := self.work.get()) is not None:
                self.deliver(client, body)

    def deliver(self, client: httpx.Client, body: dict[str, Any]) -> None:
        """POST until a 2xx, as Alertmanager retries: on a connection error and on a 5xx."""
        deadline = time.monotonic() + ANSWERED_WITHIN_SECONDS
        while time.monotonic() < deadline:
            with self.lock:
                self.turn += 1
                url = self.urls[self.turn % len(self.urls)]
            try:
                answer = client.post(url, json=body)
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


@contextmanager
def processes_in(tmp_path: Path) -> Iterator[Processes]:
    """The children of one test, all stopped after it, none left running."""
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
    seed_prefect_home(tmp_path / "prefect")
    with ExitStack() as stack:
        running = Processes(tmp_path, env, marker, stack)
        yield running
    deadline = time.monotonic() + 10
    while running.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = running.leftovers()
    assert left == [], (
        f"still running 10 s after the test: {left}"
    )  # not a test module: no rewriting
