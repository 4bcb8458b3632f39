"""What recording one incident costs triage, on SQLite (a file) and on PostgreSQL.

Triage must turn an alert into a verified mitigation in seconds, and every step of it writes the
incident store in a `session_for` block of its own (each step is a Prefect task): open the
incident on two alerts, keep the decision, triaged, mitigating, the gate's audit row before and
after the change, verified, resolved, a follow-up, then the record read back and rendered as the
post-incident report. This times that whole record per incident and per step.

The baseline, measured in the same process and interleaved with it, is the bare DB-API driver
(sqlite3, psycopg) replaying exactly the statements SQLAlchemy sent for each step (counted on a
census incident: each SELECT, INSERT, UPDATE, SAVEPOINT, BEGIN in order) against a plain table
of a few columns, one transaction per step. The ratio is what SQLModel/SQLAlchemy and our logic
add over the driver for the same round trips and commits. Only the pool's pre-ping on
PostgreSQL (one `SELECT 1` per session, which the engine asks for) is ours and not replayed.

Then `store.stats.effectiveness` over 10,000 bulk-inserted incidents, against a raw fetch of the
same rows. PostgreSQL is a private throwaway server (tests/postgres_server.py: tmpfs, fsync off)
unless REMEDIATE_TEST_POSTGRES_URL names one; the SQLite file is under the temp dir, with the
engine's own settings (WAL, default synchronous=FULL): so the SQLite figures include a real
fsync per commit and the private server's do not.

Run: `.venv/bin/python bench/incident_store.py [--incidents N] [--backend sqlite|postgresql|both]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, insert
from sqlalchemy.engine import make_url

# `tests` (the PostgreSQL server and fresh_database) is a package at the repo root, which is on
# sys.path only when Python is started from there with -m; `python bench/incident_store.py` puts
# bench/ there instead. So the repo root is inserted explicitly, before the project's imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.processes import owned_processes
from store import actions, follow_ups, incidents, queries
from store.engine import dispose_all, engine_for, session_for
from store.models import ActionStatus, Incident, IncidentStatus
from store.schema import upgrade
from store.stats import effectiveness, figures
from store.types import utcnow
from tasks.records.report import render_report
from tests.postgres_plugin import URL_ENV, fresh_database
from tests.postgres_server import ROLE, PostgresServer, libpq_url, redact, sqlalchemy_url

STATS_INCIDENTS = 10_000
STATS_RUNS = 5
WARMUP_INCIDENTS = 3
UI_URL = "http://127.0.0.1:4200"
STEPS = (
    "open (2 alerts)",
    "decision",
    "triaged",
    "mitigating",
    "begin action",
    "finish action",
    "verified",
    "resolved",
    "follow-up",
    "load + report",
)
TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")


# -- figures -------------------------------------------------------------------------------------


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def summary(label: str, samples: list[float]) -> None:
    print(f"  {label:<36} median {median_ms(samples):8.2f} ms   p95 {p95_ms(samples):8.2f} ms")


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (tmpfs, ext4, overlay...), from mountinfo."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4]
            inside = str(path).startswith(mount_point.rstrip("/") + "/") or mount_point == "/"
            if inside and len(mount_point) > len(best):
                best, kind = mount_point, right.split()[0]
    return kind


# -- one incident, as triage records it ----------------------------------------------------------


def alerts_for(i: str, now: datetime) -> tuple[incidents.AlertEvidence, ...]:
    pod = f"alphaswarm-core-{i}-7d9f8b6c5d-x2k4q"
    common = {"namespace": "alphaswarm", "pod": pod, "deployment": f"alphaswarm-core-{i}"}
    return (
        incidents.AlertEvidence(
            fingerprint=uuid.uuid4().hex[:16],
            alertname="KubePodCrashLooping",
            labels={**common, "severity": "critical", "container": "app"},
            annotations={
                "summary": f"Pod {pod} is crash looping",
                "description": f"Pod alphaswarm/{pod} (app) is waiting (CrashLoopBackOff).",
            },
            starts_at=now - timedelta(seconds=90),
            generator_url="http://prometheus:9090/graph?g0.expr=kube_pod_container_status",
            group_key='{}:{alertname="KubePodCrashLooping"}',
        ),
        incidents.AlertEvidence(
            fingerprint=uuid.uuid4().hex[:16],
            alertname="KubeDeploymentReplicasMismatch",
            labels={**common, "severity": "warning"},
            annotations={"summary": f"Deployment alphaswarm-core-{i} has 2/3 replicas ready"},
            starts_at=now - timedelta(seconds=60),
            generator_url="http://prometheus:9090/graph?g0.expr=kube_deployment_status",
            group_key='{}:{alertname="KubePodCrashLooping"}',
        ),
    )


@dataclass
class TriageRecord:
    """One incident's record, one method per triage step, each in its own session."""

    url: str
    i: str
    flow_run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    incident_id: int = 0
    report: str = ""
    render_seconds: float = 0.0  # of the last step, the part that is render_report alone

    @property
    def change_key(self) -> str:
        return f"{self.flow_run_id}:rollout-restart:alphaswarm/alphaswarm-core-{self.i}"

    def steps(self) -> tuple[Callable[[], None], ...]:
        return (
            self.open,
            self.decision,
            self.triaged,
            self.mitigating,
            self.begin_action,
            self.finish_action,
            self.verified,
            self.resolved,
            self.follow_up,
            self.load_and_report,
        )

    def open(self) -> None:
        evidence = incidents.Evidence(
            target_key=f"alert:alphaswarm/alphaswarm-core-{self.i}",
            title=f"Pod alphaswarm-core-{self.i} is crash looping (+1 more)",
            alerts=alerts_for(self.i, utcnow()),
            flow_run_id=self.flow_run_id,
        )
        with session_for(self.url) as session:
            incident, joined = incidents.open_or_join(session, evidence=evidence)
            assert incident.id is not None and not joined, "each incident must open a new one"
            self.incident_id = incident.id

    def decision(self) -> None:
        decision = incidents.DecisionEvidence(
            scenario="A",
            reason="container app OOMKilled 4 times in 5 min; one pod of three, no recent rollout",
            dry_run=False,
            namespace="alphaswarm",
            target=f"alphaswarm-core-{self.i}",
            evidence=(
                "restartCount 4, lastState OOMKilled (exit 137)",
                "2/3 replicas ready",
                "no rollout in the last 30 min",
            ),
            flow_run_id=self.flow_run_id,
        )
        with session_for(self.url) as session:
            incidents.record_decision(
                session,
                incident_id=self.incident_id,
                decision=decision,
                target_key=f"A:alphaswarm/alphaswarm-core-{self.i}",
                title=f"Runbook A (single pod crashes) on alphaswarm/alphaswarm-core-{self.i}",
            )

    def _transition(self, to: IncidentStatus, summary: str) -> None:
        with session_for(self.url) as session:
            incidents.transition(
                session,
                incident_id=self.incident_id,
                to=to,
                summary=summary,
                flow_run_id=self.flow_run_id,
            )

    def triaged(self) -> None:
        self._transition(IncidentStatus.TRIAGED, "scenario A: container app OOMKilled")

    def mitigating(self) -> None:
        self._transition(IncidentStatus.MITIGATING, "runbook A (single pod crashes) applying")

    def begin_action(self) -> None:
        start = actions.ActionStart(
            change_key=self.change_key,
            action="rollout-restart",
            target_key=f"deployment/alphaswarm/alphaswarm-core-{self.i}",
            dry_run=False,
            summary=f"restart deployment alphaswarm/alphaswarm-core-{self.i}",
            reason="one pod crash-looping on OOM: a fresh rollout replaces it",
            before={"generation": 7, "restartedAt": "2026-01-10T10:00:00Z", "ready": "2/3"},
            incident_id=self.incident_id,
            flow_run_id=self.flow_run_id,
            flow_run_name="pod-crash/amber-otter",
        )
        with session_for(self.url) as session:
            actions.begin_action(session, start=start)

    def finish_action(self) -> None:
        with session_for(self.url) as session:
            actions.finish_action(
                session,
                change_key=self.change_key,
                status=ActionStatus.APPLIED,
                after={"generation": 8, "restartedAt": utcnow().isoformat(), "ready": "3/3"},
                revert=None,
                note="rollout complete in 14 s",
            )

    def verified(self) -> None:
        # record_outcome marks the incident automated in the same session as the transition.
        with session_for(self.url) as session:
            incidents.transition(
                session,
                incident_id=self.incident_id,
                to=IncidentStatus.VERIFIED,
                summary="verified: ready 3/3; restarts: none in 60 s",
                flow_run_id=self.flow_run_id,
            )
            incidents.mark_automated(session, incident_id=self.incident_id)

    def resolved(self) -> None:
        self._transition(IncidentStatus.RESOLVED, "the fix held for 300 s")

    def follow_up(self) -> None:
        spec = follow_ups.FollowUpSpec(
            key=f"regression-test-{self.incident_id}",
            kind="regression-test",
            priority="P2",
            title="add a regression test: KubePodCrashLooping must lead triage to scenario A",
            condition="the test injects this incident and asserts triage picks scenario A",
            note="signal: KubePodCrashLooping, KubeDeploymentReplicasMismatch",
        )
        with session_for(self.url) as session:
            follow_ups.upsert_follow_up(session, incident_id=self.incident_id, spec=spec)

    def load_and_report(self) -> None:
        with session_for(self.url) as session:
            record = queries.load_incident(session, incident_id=self.incident_id)
        start = time.perf_counter()
        self.report = render_report(record, ui_url=UI_URL)
        self.render_seconds = time.perf_counter() - start


def record_incident(url: str, i: str) -> tuple[list[float], TriageRecord]:
    """The seconds each step took, and the record (for its checks)."""
    record = TriageRecord(url, i)
    times = []
    for step in record.steps():
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times, record


# -- the census: the statements SQLAlchemy sends for each step -----------------------------------


@dataclass(frozen=True)
class Statement:
    verb: str  # SELECT, INSERT, UPDATE, DELETE, or a transaction-control verb
    rows: int  # rows written, for INSERT
    text: str  # kept verbatim for transaction control (BEGIN IMMEDIATE, SAVEPOINT name)


def census(url: str) -> list[list[Statement]]:
    """Record one incident with a listener on the engine; the statements of each step."""
    engine = engine_for(url)
    current: list[Statement] = []

    def seen(
        _conn: Any, cursor: Any, statement: str, _params: Any, _context: Any, many: bool
    ) -> None:
        verb = statement.split(None, 1)[0].upper()
        rows = max(cursor.rowcount, 1) if verb == "INSERT" else 0
        current.append(Statement(verb, rows, statement if verb in TRANSACTION_CONTROL else ""))

    event.listen(engine, "after_cursor_execute", seen)
    try:
        record = TriageRecord(url, "census")
        per_step = []
        for step in record.steps():
            current.clear()
            step()
            per_step.append(list(current))
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    known = {"SELECT", "INSERT", "UPDATE", "DELETE", *TRANSACTION_CONTROL}
    unknown = {s.verb for step in per_step for s in step} - known
    if unknown:
        raise RuntimeError(f"the census saw statements the baseline cannot replay: {unknown}")
    return per_step


# -- the baseline: the same statements with the bare driver --------------------------------------


class Baseline:
    """A plain table in the store's database and a raw DB-API connection to it; `replay` sends
    one step's statements in one transaction."""

    mark = "?"  # the driver's parameter marker

    def __init__(self, census: list[list[Statement]]) -> None:
        self.census = census
        self.last_id = 0
        self.incident = 0

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def now(self) -> Any:
        raise NotImplementedError

    def replay(self, index: int) -> None:
        m = self.mark
        for s in self.census[index]:
            if s.verb in TRANSACTION_CONTROL:
                self.execute(s.text)
            elif s.verb == "SELECT":
                self.execute(
                    f"SELECT id, incident, step, at, payload FROM bench_row WHERE id = {m}",
                    (self.last_id,),
                ).fetchall()
            elif s.verb == "INSERT":
                values = ", ".join([f"({m}, {m}, {m}, {m})"] * s.rows)
                row = (self.incident, STEPS[index], self.now(), f'{{"step": {index}, "n": 1}}')
                self.last_id = self.execute(
                    f"INSERT INTO bench_row (incident, step, at, payload) VALUES {values} "
                    "RETURNING id",
                    row * s.rows,
                ).fetchall()[-1][0]
            elif s.verb == "UPDATE":
                self.execute(
                    f"UPDATE bench_row SET payload = {m}, at = {m} WHERE id = {m}",
                    ('{"updated": true}', self.now(), self.last_id),
                )
            else:  # DELETE: nothing to delete, but the same round trip
                self.execute(f"DELETE FROM bench_row WHERE id = {m}", (-1,))
        self.commit()

    def record_incident(self) -> list[float]:
        self.incident += 1
        times = []
        for index in range(len(STEPS)):
            start = time.perf_counter()
            self.replay(index)
            times.append(time.perf_counter() - start)
        return times

    def fetch_incidents(self) -> int:
        """Every incident row, newest first: what list_incidents asks for, with no ORM."""
        return len(
            self.execute("SELECT * FROM incident ORDER BY opened_at DESC, id DESC").fetchall()
        )

    def close(self) -> None:
        raise NotImplementedError


class SqliteBaseline(Baseline):
    """sqlite3 with the engine's settings: WAL, foreign keys, autocommit off, BEGIN IMMEDIATE."""

    def __init__(self, path: str, census: list[list[Statement]]) -> None:
        super().__init__(census)
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_row (id INTEGER PRIMARY KEY, "
            "incident INTEGER NOT NULL, step TEXT NOT NULL, at TEXT NOT NULL, "
            "payload TEXT NOT NULL)"
        )

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql, params)

    def commit(self) -> None:
        self.conn.commit()

    def now(self) -> Any:
        return utcnow().isoformat()

    def close(self) -> None:
        self.conn.close()


class PostgresBaseline(Baseline):
    """psycopg, a transaction per step (the driver's implicit BEGIN, as SQLAlchemy's)."""

    def __init__(self, url: str, census: list[list[Statement]]) -> None:
        super().__init__(census)
        self.conn = psycopg.connect(libpq_url(url))
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_row (id bigserial PRIMARY KEY, "
            "incident integer NOT NULL, step text NOT NULL, at timestamptz NOT NULL, "
            "payload text NOT NULL)"
        )
        self.conn.commit()

    mark = "%s"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql, params)

    def commit(self) -> None:
        self.conn.commit()

    def now(self) -> Any:
        return utcnow()

    def close(self) -> None:
        self.conn.close()


# -- stats ---------------------------------------------------------------------------------------


def bulk_incidents(url: str, count: int) -> float:
    """`count` incidents over 30 days: 60 targets, scenarios A to F and unclassified, most
    mitigated automatically, some escalated, a few still open. Seconds the insert took."""
    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(count):
        scenario = rng.choice(("A", "A", "A", "B", "C", "D", "E", "F", None))
        target = f"alphaswarm/svc-{rng.randrange(60)}"
        opened = t0 + timedelta(seconds=rng.uniform(0, 30 * 86400))
        automated = scenario is not None and rng.random() < 0.75
        escalated = not automated and rng.random() < 0.5
        still_open = rng.random() < 0.03
        status = IncidentStatus.ESCALATED if escalated else IncidentStatus.RESOLVED
        if still_open:
            target, status = f"{target}-open-{n}", IncidentStatus.TRIAGED
        verified = opened + timedelta(seconds=rng.lognormvariate(4, 0.8)) if automated else None
        incident = Incident(
            title=f"Runbook {scenario or '?'} on {target}",
            status=status,
            scenario=scenario,
            target_key=f"{scenario}:{target}",
            open_key=f"{scenario}:{target}" if still_open else None,
            namespace="alphaswarm",
            target=target.split("/")[-1],
            started_at=opened - timedelta(seconds=30),
            opened_at=opened,
            triaged_at=opened + timedelta(seconds=2),
            mitigating_at=opened + timedelta(seconds=3) if automated else None,
            verified_at=verified,
            escalated_at=opened + timedelta(minutes=2) if escalated else None,
            resolved_at=None if still_open else opened + timedelta(hours=1),
            root_cause="container OOMKilled",
            evidence=["restartCount 4", "2/3 ready"],
            automated=automated,
        )
        rows.append(incident.model_dump(exclude={"id"}))
    start = time.perf_counter()
    with session_for(url) as session:
        session.execute(insert(Incident), rows)
    return time.perf_counter() - start


@dataclass
class StatsFigures:
    incidents: int
    insert_seconds: float
    effectiveness: list[float]
    query: list[float]
    figures: list[float]
    raw_fetch: list[float]


def time_stats(url: str, baseline: Baseline) -> StatsFigures:
    inserted = bulk_incidents(url, STATS_INCIDENTS)
    runs: dict[str, list[float]] = {"effectiveness": [], "query": [], "figures": [], "raw": []}
    total = 0
    for run in range(STATS_RUNS + 1):  # the first is a warm-up
        times = {}
        with session_for(url) as session:  # a new session each time: no identity map to reuse
            start = time.perf_counter()
            report = effectiveness(session)
            times["effectiveness"] = time.perf_counter() - start
        with session_for(url) as session:
            start = time.perf_counter()
            rows = queries.list_incidents(session, limit=None)
            times["query"] = time.perf_counter() - start
            start = time.perf_counter()
            figures(rows)
            times["figures"] = time.perf_counter() - start
        start = time.perf_counter()
        total = baseline.fetch_incidents()
        baseline.commit()
        times["raw"] = time.perf_counter() - start
        assert report.overall.incidents == len(rows) == total
        if run:
            for name, seconds in times.items():
                runs[name].append(seconds)
    return StatsFigures(
        total, inserted, runs["effectiveness"], runs["query"], runs["figures"], runs["raw"]
    )


# -- one backend ---------------------------------------------------------------------------------


@dataclass
class BackendFigures:
    backend: str
    where: str
    statements: list[list[Statement]]
    totals: list[float]
    base_totals: list[float]
    steps: list[list[float]]  # per step, the samples
    base_steps: list[list[float]]
    render: list[float]
    stats: StatsFigures


def run_backend(
    backend: str, url: str, where: str, baseline_for: Callable[[Any], Baseline], n: int
) -> BackendFigures:
    start = time.perf_counter()
    upgrade(url)
    print(f"\n{backend}: {where}; migrated in {time.perf_counter() - start:.2f} s")
    statements = census(url)
    baseline = baseline_for(statements)
    try:
        for k in range(WARMUP_INCIDENTS):
            record_incident(url, f"warmup-{k}")
            baseline.record_incident()
        steps: list[list[float]] = [[] for _ in STEPS]
        base_steps: list[list[float]] = [[] for _ in STEPS]
        totals, base_totals, render = [], [], []
        for i in range(n):
            # Interleaved, in alternating order, so drift and noise fall on both alike.
            first_ours = i % 2 == 0
            if not first_ours:
                base = baseline.record_incident()
            ours, record = record_incident(url, str(i))
            if first_ours:
                base = baseline.record_incident()
            assert "**resolved**" in record.report, "the report must show the whole record"
            for index in range(len(STEPS)):
                steps[index].append(ours[index])
                base_steps[index].append(base[index])
            render.append(record.render_seconds)
            totals.append(sum(ours))
            base_totals.append(sum(base))
        stats = time_stats(url, baseline)
    finally:
        baseline.close()
        dispose_all()
    figures_ = BackendFigures(
        backend, where, statements, totals, base_totals, steps, base_steps, render, stats
    )
    print_backend(figures_)
    return figures_


def counts(statements: list[Statement]) -> str:
    writes = sum(s.verb in ("INSERT", "UPDATE", "DELETE") for s in statements)
    reads = sum(s.verb == "SELECT" for s in statements)
    other = len(statements) - writes - reads
    return f"{reads}r {writes}w" + (f" {other}tx" if other else "")


def print_backend(f: BackendFigures) -> None:
    n = len(f.totals)
    every = [s for step in f.statements for s in step]
    print(
        f"  {n} incidents, {len(STEPS)} sessions (commits) and {len(every)} statements each "
        f"({counts(every)}; r read, w write, tx BEGIN/SAVEPOINT)"
    )
    print(f"  {'step':<16}{'statements':>12}{'ours ms':>10}{'driver ms':>11}{'ratio':>8}")
    for index, name in enumerate(STEPS):
        ours, base = median_ms(f.steps[index]), median_ms(f.base_steps[index])
        print(
            f"  {name:<16}{counts(f.statements[index]):>12}{ours:>10.2f}{base:>11.2f}"
            f"{ours / base:>7.1f}x"
        )
    print(f"  (of load + report, render_report alone: {median_ms(f.render):.2f} ms)")
    summary("one incident, store + report", f.totals)
    summary("baseline: driver, same statements", f.base_totals)
    print(f"  ratio (medians) {median_ms(f.totals) / median_ms(f.base_totals):.2f}x")
    s = f.stats
    print(
        f"  stats over {s.incidents} incidents (bulk insert of {STATS_INCIDENTS} took "
        f"{s.insert_seconds:.2f} s), {STATS_RUNS} runs:"
    )
    summary("effectiveness(session)", s.effectiveness)
    summary("  list_incidents (query + ORM rows)", s.query)
    summary("  figures (pure)", s.figures)
    summary("baseline: driver fetch, same rows", s.raw_fetch)


def sqlite_backend(n: int) -> BackendFigures:
    with tempfile.TemporaryDirectory(prefix="bench-incident-store-") as folder:
        path = Path(folder) / "incidents.db"
        try:
            return run_backend(
                "sqlite",
                f"sqlite:///{path}",
                f"file in {folder} ({filesystem_of(Path(folder))}), WAL",
                lambda census: SqliteBaseline(str(path), census),
                n,
            )
        finally:
            dispose_all()


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str, str]]:
    """The server's maintenance URL, and what it is: the configured one or a private one."""
    if configured := os.environ.get(URL_ENV):
        url = sqlalchemy_url(configured)
        yield url, f"{redact(url)} ({URL_ENV})"
        return
    start = time.perf_counter()
    with PostgresServer() as server:
        took = time.perf_counter() - start
        kind = filesystem_of(server.data_dir)
        yield server.url, f"private server on {kind}, fsync off, started in {took:.2f} s"


def postgres_backend(n: int) -> BackendFigures:
    with postgres_server() as (server_url, where), fresh_database(server_url) as url:
        try:
            version = ""
            with psycopg.connect(libpq_url(url)) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                version = f"PostgreSQL {row[0] if row else '?'}, "
            database = make_url(url).database
            return run_backend(
                "postgresql",
                url,
                f"{version}{where}, database {database}",
                lambda census: PostgresBaseline(url, census),
                n,
            )
        finally:
            dispose_all()  # before fresh_database drops it


def print_table(results: list[BackendFigures]) -> None:
    print(
        f"\n{'backend':<11}{'incident med':>13}{'p95':>9}{'driver':>9}{'ratio':>8}"
        f"{'stmts':>7}{'stats med':>11}{'driver':>9}{'ratio':>8}"
    )
    for f in results:
        stats, raw = median_ms(f.stats.effectiveness), median_ms(f.stats.raw_fetch)
        ours, base = median_ms(f.totals), median_ms(f.base_totals)
        print(
            f"{f.backend:<11}{ours:>10.1f} ms{p95_ms(f.totals):>6.1f} ms{base:>6.1f} ms"
            f"{ours / base:>7.1f}x{sum(map(len, f.statements)):>7}"
            f"{stats:>8.0f} ms{raw:>6.0f} ms{stats / raw:>7.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=200, help="incidents to record (200)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="(both)"
    )
    args = parser.parse_args()
    if args.incidents < 1:
        parser.error("--incidents must be at least 1")
    # A SIGTERM (a timeout, a CI cancel) unwinds like an error, so the server and temp dirs go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    began = time.perf_counter()
    results = []
    if args.backend in ("sqlite", "both"):
        results.append(sqlite_backend(args.incidents))
    if args.backend in ("postgresql", "both"):
        results.append(postgres_backend(args.incidents))
    print_table(results)
    left = owned_processes(role=ROLE)
    print(
        f"\ntook {time.perf_counter() - began:.1f} s; "
        f"PostgreSQL processes left running: {len(left)}"
    )
    if left:
        raise SystemExit(f"PostgreSQL processes survived the bench: {left}")


if __name__ == "__main__":
    main()
