"""The gate's guarantees across processes, on SQLite and on PostgreSQL (issue 21, 4 and 5): N
gates at once never spend more than the hourly budget, and a change whose run was killed
between the request and its audit row's completion is settled from what the cluster shows by
the next run, never sent a second time. Judged by the sandbox's journal (what reached the
cluster) and the audit rows."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

import pytest
from prefect.settings import PREFECT_API_URL
from sqlmodel import select

from sandbox.journal import Fault
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tasks.changes.audit import StoreAudit
from tasks.changes.gate import GuardRefused, apply_change
from tasks.changes.guards import StoreGuards
from tasks.changes.models import ChangeStatus, Reach, RestartDeployment, Target
from tasks.changes.writer import cluster_writer
from tasks.settings import Safety, Settings

NS, CORE = "alphaswarm", "alphaswarm-core"
RESTART = r"/deployments/[^/]+$"


@pytest.fixture(autouse=True)
def store(any_store: str) -> str:
    return any_store


def audit_rows(store: str) -> list[IncidentAction]:
    with session_for(store) as session:
        return list(session.exec(select(IncidentAction).order_by(IncidentAction.id)).all())


def restarts(sandbox: SandboxServer, path: str = RESTART) -> int:
    return len(sandbox.cluster.journal.mutations(path))


# -- the hourly budget under concurrency ---------------------------------------------------

TARGETS = [
    Target(kind="Deployment", namespace=NS, name=CORE),
    Target(kind="Deployment", namespace=NS, name="alphaswarm-client"),
    Target(kind="Deployment", namespace="alphaswarm-admin", name="alphaswarm-cp"),
    Target(kind="Deployment", namespace="ingress-nginx", name="ingress-nginx-controller"),
]


def test_gates_at_once_never_spend_more_than_the_budget(sandbox: SandboxServer, store: str) -> None:
    # Four restarts of four workloads at once under a budget of two. Each request takes half a
    # second to answer, so every gate has counted before the first one's row is complete: only
    # a count and a spend under one lock keeps it to two.
    budget = 2
    sandbox.cluster.faults.add(Fault(path=RESTART, methods=frozenset({"PATCH"}), latency=0.5))
    guards = StoreGuards(store, Safety(max_changes_per_hour=budget), Settings().workloads.scope)
    reach = Reach(cluster=cluster_writer())
    start = threading.Barrier(len(TARGETS))
    ended: list[str] = []

    def restart(target: Target) -> None:
        start.wait()
        try:
            record = apply_change(
                RestartDeployment(target=target, reason="test"),
                key=str(uuid.uuid4()),
                dry_run=False,
                reach=reach,
                audit=StoreAudit(store),
                guards=guards,
            )
            ended.append(record.status.value)
        except GuardRefused as refused:
            ended.append(next(v.guard for v in refused.record.verdicts if not v.passed))

    threads = [threading.Thread(target=restart, args=(t,), daemon=True) for t in TARGETS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(ended) == ["applied", "applied", "budget", "budget"]
    assert restarts(sandbox) == budget
    statuses = sorted(r.status.value for r in audit_rows(store))
    assert statuses == ["applied", "applied", "refused", "refused"]


# -- a run killed between the request and its audit row's completion -----------------------

RUN = """
import os, signal, sys
from tests.flows.test_safety_guards import CORE, NS, guarded_restart
if sys.argv[1] == "dies-after-the-request":  # the restart was sent and answered
    from tasks.changes.audit import StoreAudit
    StoreAudit.finish = lambda self, record: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "dies-before-the-request":  # the row is written, nothing was sent
    from tasks.changes.models import RestartDeployment
    RestartDeployment.perform = lambda self, *a, **k: os.kill(os.getpid(), signal.SIGKILL)
print(guarded_restart(NS, CORE).status)
"""


def served_run(how: str) -> subprocess.CompletedProcess[str]:
    """A process of its own doing the restart, as a served deployment's run does. Its lease
    lasts three seconds: a killed run's flow run stays Running, so the next run waits that
    long for it."""
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "REMEDIATE_SAFETY__LEASE_SECONDS": "3",
    }
    return subprocess.run(
        [sys.executable, "-c", RUN, how], env=env, capture_output=True, text=True, timeout=180
    )


def test_a_change_whose_run_died_after_the_request_is_settled_and_not_sent_again(
    sandbox: SandboxServer, store: str
) -> None:
    killed = served_run("dies-after-the-request")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert restarts(sandbox) == 1
    (orphan,) = audit_rows(store)
    assert orphan.status is ActionStatus.IN_PROGRESS  # begun, never completed

    again = served_run("lives")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split()[-1] == ChangeStatus.ALREADY_DONE.value
    assert restarts(sandbox) == 1  # not sent twice
    settled, second = audit_rows(store)
    assert settled.id == orphan.id and settled.status is ActionStatus.APPLIED
    assert settled.note.startswith("settled after its run died: the cluster shows it took effect")
    assert settled.finished_at is not None and settled.after.get("restartedAt")
    assert second.status is ActionStatus.ALREADY_DONE
    assert "died before completing its audit row" in second.note


def test_a_change_whose_run_died_before_the_request_is_settled_and_sent_once(
    sandbox: SandboxServer, store: str
) -> None:
    killed = served_run("dies-before-the-request")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert restarts(sandbox) == 0

    again = served_run("lives")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split()[-1] == ChangeStatus.APPLIED.value
    assert restarts(sandbox) == 1
    settled, second = audit_rows(store)
    assert settled.status is ActionStatus.FAILED
    assert settled.error.startswith("settled after its run died: it never took effect")
    assert second.status is ActionStatus.APPLIED


RETRY = """
import os, signal, sys
from tasks.changes.audit import StoreAudit
from tasks.changes.gate import apply_change
from tasks.changes.guards import StoreGuards
from tasks.changes.models import Reach, RestartDeployment, Target
from tasks.changes.writer import cluster_writer
from tasks.settings import Settings
StoreAudit.finish = lambda self, record: os.kill(os.getpid(), signal.SIGKILL)
url, settings = os.environ["REMEDIATE_STORE__URL"], Settings()
apply_change(
    RestartDeployment(target=Target(kind="Deployment", namespace=sys.argv[1], name=sys.argv[2])),
    key=sys.argv[3],
    dry_run=False,
    reach=Reach(cluster=cluster_writer()),
    audit=StoreAudit(url),
    guards=StoreGuards(url, settings.safety, settings.workloads.scope),
)
"""


def test_a_retry_in_another_process_reads_the_facts_before_from_the_audit_row(
    sandbox: SandboxServer, store: str
) -> None:
    # The same change key (a Prefect retry of the task run) in a new process: the first
    # attempt's restart took effect and its process died before completing the row. The retry
    # reads the facts before from the row, sees the restart done and does not repeat it.
    key = str(uuid.uuid4())
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    killed = subprocess.run(
        [sys.executable, "-c", RETRY, NS, CORE, key],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert restarts(sandbox) == 1
    settings = Settings()
    record = apply_change(
        RestartDeployment(target=Target(kind="Deployment", namespace=NS, name=CORE)),
        key=key,
        dry_run=False,
        reach=Reach(cluster=cluster_writer()),
        audit=StoreAudit(store),
        guards=StoreGuards(store, settings.safety, settings.workloads.scope),
    )
    assert record.status is ChangeStatus.APPLIED and "not repeated" in record.note
    assert restarts(sandbox) == 1
    (row,) = audit_rows(store)
    assert row.status is ActionStatus.APPLIED and row.attempts == 2
