"""Many incidents at once on the running stack: 50 crash-looping Deployments, their alerts in one
storm, two workers; every incident mitigated exactly once, the time to the last mitigation, and
how the runs queued, beside one incident alone on the same stack.

The stack is `remediate up`'s own (`remediate.stack.start`): the Prefect server, the served
deployments, the intake with its outbox, every guard on. Its cluster is a sandbox in this
process (as bench/alert_to_mitigation.py has it), so the bench reads the sandbox's request
journal directly, every request stamped as it arrives. The two workers are two served runner
processes (`python -m deployments.serve`: the stack's, and a second one started here on the
same Prefect API and environment), polling the same deployments: each run is submitted by the
one whose proposal of PENDING the server accepts (the other is told to abort), and executed in
a process of its own forked from that runner's warm process.

The fleet: Deployments `storm-00` ... in alphaswarm, two pods each (tests/stack/fleet.py); one
pod of each is made to crash on every start. Once each has crashed and restarted, the storm is
sent: KubePodCrashLooping per pod, grouped as infra/alertmanager/receiver.yaml's route groups
them (alertname and namespace: all of them one group), in the notifications Alertmanager sends
while the group grows (a fifth of the alerts, half, four fifths, all), each sent by both HA
replicas at once (two clients). The intake opens one incident per Deployment and owes each one
triage run; the runs start as the runners' limits let them.

Measured per incident: from the 2xx of the first notification that carried its alert to the
arrival of its restart (the non-dry-run PATCH of the Deployment, from the sandbox's journal);
for the storm: from the first POST to the last restart. Exactly once: restarts per Deployment
(each must be 1), incidents in the store (one per Deployment, and their status), triage runs
(one per incident, each COMPLETED once: run_count 1). How the runs queued, from Prefect's own
record of each run (server timestamps): created, PENDING (a runner took it), RUNNING (its
process started), the end; the most runs RUNNING at once, by Prefect's states and by the
processes seen (/proc, the warm starts' `run-<id>` names, and which runner's each was; a run's
process may outlive its final state by a moment); the runners' polls that found them full
("scheduled runs skipped (at capacity)"); the requests the cluster received, per incident.

How runs queue, by Prefect's own means: each runner starts at most PREFECT_RUNNER_PROCESS_LIMIT
runs at once (Prefect's default, 5; `--runner-limit`), so 10 across the two; the others stay
SCHEDULED in Prefect until a runner has a slot, and its next poll (or the new-run wake-up, where
deployments/serve.py has it) takes them. `--triage-limit N` sets Prefect's deployment
concurrency limit on triage, enforced by the server across both runners: a run over it is put
back as AwaitingConcurrencySlot and retried after PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_
WAIT_SECONDS, which the bench's server gets as 1 s (Prefect's default: 30 s).

Before the storm, on the same stack: one warm-up incident (not counted: the first run after a
start pays for what starts once), then one incident alone (`solo-1`), measured the same way.

Guards: every one on (kill switch read before and right before each change, scope, lease per
workload, cooldown, circuit breaker, budget, blast radius). The budget (changes across the
cluster per hour, default 30) would hold the 31st restart of the hour and every one after it for
a human's approval: the bench sets it to what the run needs (`--budget`, printed), as an
operator expecting such a storm would. The health sweep's schedule is paused (it would find the
fleet's crash loops too and join them). No monitoring loop runs: once a fix held, Alertmanager's
resolved notification is played by the tests' stand-in (tests/alertmanager_stand_in.py), so
the incidents resolve and the runs end.

The sandbox does not enforce RBAC here (the stack's own sandbox does not either): on a cluster
under infra/rbac.yaml, whose writes name their objects, a restart of `storm-07` is refused (403)
until the Role names it.

Run: `.venv/bin/python bench/incident_storm.py [--incidents 50] [--runner-limit N]
[--triage-limit N] [--prefect-db sqlite|postgresql] [--logs DIR]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_api import PrefectApi
from stack_env import hermetic

from remediate.processes import Child
from remediate.stack import SANDBOX_TICK_SECONDS, Stack, StackOptions, start
from sandbox.flow_env import flow_env
from sandbox.journal import Journal, Request
from sandbox.server import SandboxServer
from store.engine import session_for
from store.models import Incident
from tasks.triggers.outbox import TRIGGER_TAG
from tests.alertmanager_stand_in import resolving_held_incidents
from tests.stack.fleet import (
    add_fleet,
    crash_looping,
    crash_one_pod_each,
    notifications,
    restarted,
    second_runner,
    settled,
    wait_for,
    waves_of,
)

SWEEP = "health-sweep/health-sweep"
TRIAGE = "triage/triage"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
SKIPPED = "scheduled runs skipped (at capacity)"
READY_SECONDS = 180.0
SETTLE_SECONDS = 60.0
SINGLE_SECONDS = 180.0
STORM_SECONDS = 900.0
DEFAULT_BUDGET = 30  # REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR's default


# -- the sandbox's journal, stamped ---------------------------------------------------------------


@dataclass(frozen=True)
class Stamped:
    at: float  # time.time() as the sandbox received it
    request: Request


class JournalClock:
    """Stamps every request the sandbox journals with its arrival time (wall clock, to compare
    with Prefect's timestamps)."""

    def __init__(self, journal: Journal) -> None:
        self._lock = threading.Lock()
        self._stamped: list[Stamped] = []
        record = journal.record

        def stamped(request: Request) -> int:
            at = time.time()
            index = record(request)
            with self._lock:
                self._stamped.append(Stamped(at, request))
            return index

        journal.record = stamped  # type: ignore[method-assign]

    def mark(self) -> int:
        with self._lock:
            return len(self._stamped)

    def count(self, mark: int, until: float | None = None) -> int:
        """Requests since `mark` (up to the time `until`)."""
        with self._lock:
            return sum(1 for s in self._stamped[mark:] if until is None or s.at <= until)

    def restarts(self, mark: int) -> dict[str, list[float]]:
        """Each restarted Deployment's restarts since `mark`, as arrival times."""
        with self._lock:
            since = self._stamped[mark:]
        found: dict[str, list[float]] = {}
        for s in since:
            if name := restarted(s.request):
                found.setdefault(name, []).append(s.at)
        return found


# -- Prefect's record ------------------------------------------------------------------------------


class Prefect(PrefectApi):
    def limit(self, name: str, limit: int | None) -> int | None:
        """Set the deployment's concurrency limit (None: leave it); what it is now."""
        deployment = self.call("GET", f"/deployments/name/{name}")
        if limit is not None:
            self.call(
                "PATCH", f"/deployments/{deployment['id']}", json={"concurrency_limit": limit}
            )
            deployment = self.call("GET", f"/deployments/name/{name}")
        limit_now = deployment.get("global_concurrency_limit") or {}
        found: int | None = limit_now.get("limit")
        return found

    def triage_runs(self, after: float) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.call(
            "POST",
            "/flow_runs/filter",
            json={
                "flow_runs": {
                    "tags": {"all_": [TRIGGER_TAG]},
                    "expected_start_time": {"after_": _iso(after)},
                },
                "limit": 200,
            },
        )
        return runs

    def timeline(self, run: dict[str, Any]) -> Timeline:
        states = self.call("GET", "/flow_run_states/", params={"flow_run_id": run["id"]})
        found: dict[str, float] = {}
        names: list[str] = []
        for state in sorted(states, key=lambda s: s["timestamp"]):
            names.append(state["name"])
            found.setdefault(state["type"], _epoch(state["timestamp"]))
        end = next((found[t] for t in FINAL if t in found), None)
        return Timeline(
            run_id=run["id"],
            created=_epoch(run["created"]),
            pending=found.get("PENDING"),
            running=found.get("RUNNING"),
            end=end,
            state=run["state_type"],
            run_count=run["run_count"],
            states=names,
        )


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat()


@dataclass
class Timeline:
    run_id: str
    created: float
    pending: float | None
    running: float | None
    end: float | None
    state: str
    run_count: int
    states: list[str]
    deployment: str = ""
    alerted: float = 0.0  # the 2xx that first carried its alert
    restart: float | None = None  # its restart's arrival
    runner: str = ""


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# -- the runners' processes, as the OS sees them ---------------------------------------------------


class RunProcesses:
    """Samples /proc for the runs' processes (`run-<id>` in comm, deployments/warm_start.py) and
    the runner each belongs to (the serve process among its ancestors)."""

    def __init__(self, runners: dict[int, str], every: float = 0.1) -> None:
        self.runners, self.every = runners, every
        self.owner: dict[str, str] = {}  # run id prefix -> runner
        self.pids: dict[str, set[int]] = {}  # run id prefix -> pids seen
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-processes", daemon=True)

    def __enter__(self) -> RunProcesses:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            parents: dict[int, int] = {}
            runs: dict[int, str] = {}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                comm = stat[stat.index("(") + 1 : stat.rindex(")")]
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                if comm.startswith("run-"):
                    runs[int(entry.name)] = comm.removeprefix("run-")
            self.most = max(self.most, len(runs))
            for pid, prefix in runs.items():
                self.pids.setdefault(prefix, set()).add(pid)
                up = pid
                while up in parents and up not in self.runners:
                    up = parents[up]
                if up in self.runners:
                    self.owner.setdefault(prefix, self.runners[up])


# -- the stack -------------------------------------------------------------------------------------


def runner_pids(stack: Stack, second: Child) -> dict[int, str]:
    found = {}
    for name, child in (
        ("runner-1", next(c for c in stack.children if c.name == "served-deployments")),
        ("runner-2", second),
    ):
        assert child.process is not None
        found[child.process.pid] = name
    return found


def polls_at_capacity(logs: list[Path]) -> dict[str, int]:
    """Each runner's polls that found runs to start while it was at its limit (it leaves them
    scheduled, and says so)."""
    found = {}
    for n, log in enumerate(logs, 1):
        lines = log.read_text(errors="replace").splitlines()
        found[f"runner-{n}"] = sum(1 for line in lines if SKIPPED in line)
    return found


# -- one incident alone ---------------------------------------------------------------------------


@dataclass
class Single:
    latency: float  # 2xx to the restart
    run: Timeline
    requests: int  # to the cluster, from the 2xx to the run's end


def one_incident(
    name: str,
    sandbox: SandboxServer,
    clock: JournalClock,
    post: Callable[[dict[str, Any]], httpx.Response],
    prefect: Prefect,
) -> Single:
    cluster = sandbox.cluster
    pods = crash_one_pod_each(cluster, [name])
    wait_for("crash loop", lambda: crash_looping(cluster, pods), SETTLE_SECONDS)
    (body,) = notifications(list(pods), [1])
    mark, began = clock.mark(), time.time()
    answer = post(body)
    answered = time.time()
    if answer.json().get("runs_queued") != 1:
        raise RuntimeError(f"expected one run queued, the intake said {answer.json()}")
    restart = wait_for("restart", lambda: clock.restarts(mark).get(name), SINGLE_SECONDS)[0]

    def ended() -> dict[str, Any] | None:
        runs = [r for r in prefect.triage_runs(began - 1) if r["state_type"] in FINAL]
        return runs[0] if runs else None

    run = wait_for("the run's end", ended, SINGLE_SECONDS, 0.2)
    wait_for("rollout", lambda: settled(cluster, [name]), SETTLE_SECONDS)
    timeline = prefect.timeline(run)
    timeline.restart, timeline.alerted = restart, answered
    return Single(restart - answered, timeline, clock.count(mark, timeline.end))


def single_line(label: str, s: Single) -> str:
    r = s.run
    assert r.pending is not None and r.running is not None and r.restart is not None
    return (
        f"{label}: {s.latency:5.2f} s from the 2xx to the restart (outbox to run"
        f" {r.created - r.alerted:.2f}, to a runner {r.pending - r.created:.2f}, process start"
        f" {r.running - r.pending:.2f}, flow to the restart {r.restart - r.running:.2f});"
        f" run {r.state} after {(r.end or 0) - r.created:.1f} s, {s.requests} requests to the"
        " cluster"
    )


# -- the storm -------------------------------------------------------------------------------------


@dataclass
class Storm:
    began: float = 0.0  # the first POST
    answered: dict[str, float] = field(default_factory=dict)  # pod -> first 2xx carrying it
    answers: Counter[int] = field(default_factory=Counter)
    posts: int = 0
    alerts: int = 0
    runs_queued: int = 0
    sent_in: float = 0.0


def send_storm(
    bodies: list[dict[str, Any]], post: Callable[[dict[str, Any]], httpx.Response]
) -> Storm:
    """Every notification from both Alertmanager replicas at once (two clients)."""
    storm = Storm(began=time.time())
    lock = threading.Lock()

    def replica() -> None:
        for body in bodies:
            answer = post(body)
            at = time.time()
            with lock:
                storm.answers[answer.status_code] += 1
                storm.posts += 1
                storm.alerts += len(body["alerts"])
                if answer.status_code == 200:
                    storm.runs_queued += answer.json().get("runs_queued", 0)
                    for alert in body["alerts"]:
                        storm.answered.setdefault(alert["labels"]["pod"], at)

    replicas = [threading.Thread(target=replica, name=f"alertmanager-{n}") for n in (1, 2)]
    for thread in replicas:
        thread.start()
    for thread in replicas:
        thread.join()
    storm.sent_in = time.time() - storm.began
    return storm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {statistics.median(values):6.2f} s  p95 {percentile(values, 0.95):6.2f} s"
        f"  max {max(values):6.2f} s"
    )


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def prefect_on_postgres(exits: ExitStack) -> str:
    """A private PostgreSQL server for the Prefect server (the tests' throwaway one)."""
    from tests.postgres_server import PostgresServer

    server = exits.enter_context(PostgresServer())
    return f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument(
        "--runner-limit",
        type=int,
        help="runs each runner executes at once (PREFECT_RUNNER_PROCESS_LIMIT; Prefect's: 5)",
    )
    parser.add_argument(
        "--triage-limit",
        type=int,
        help="the triage deployment's concurrency limit (Prefect's, across both runners); "
        "default: the deployments table's",
    )
    parser.add_argument("--budget", type=int, help="REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR")
    parser.add_argument("--prefect-db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--logs", type=Path, help="keep the stack's logs in this folder")
    parser.add_argument("--verbose", action="store_true", help="print the stack's progress")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n: int = args.incidents
    names = [f"storm-{i:02d}" for i in range(n)]
    budget = args.budget or max(DEFAULT_BUDGET, n + 10)

    with tempfile.TemporaryDirectory(prefix="incident-storm-") as tmp, ExitStack() as exits:
        state = Path(tmp)
        exits.enter_context(hermetic(state))
        logs = state / "stack" / "logs"
        if args.logs is not None:
            exits.callback(lambda: shutil.copytree(logs, args.logs, dirs_exist_ok=True))
        sandbox = exits.enter_context(SandboxServer(tick_seconds=SANDBOX_TICK_SECONDS))
        clock = JournalClock(sandbox.cluster.journal)
        kubeconfig = sandbox.write_kubeconfig(state / "kubeconfig.yaml")
        os.environ.update(flow_env(sandbox.url, sandbox.cluster, kubeconfig))
        os.environ["REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR"] = str(budget)
        if args.runner_limit is not None:
            os.environ["PREFECT_RUNNER_PROCESS_LIMIT"] = str(args.runner_limit)
        # A run the deployment's limit turns away is rescheduled this much later (Prefect: 30 s).
        os.environ["PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS"] = "1"
        if args.prefect_db == "postgresql":
            os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_on_postgres(exits)

        began = time.monotonic()
        say = print if args.verbose else (lambda _: None)
        stack = start(
            StackOptions(
                state_dir=state, kubeconfig=kubeconfig, prefect_port=0, intake_port=0, sample=False
            ),
            say,
            exits,
        )
        second = second_runner(stack, logs / "served-deployments-2.log", exits)
        prefect = Prefect(stack.api_url)
        exits.callback(prefect.close)
        wait_for("the runners' poll", lambda: prefect.polled(TRIAGE), READY_SECONDS, 0.2)
        prefect.pause(SWEEP)
        triage_limit = prefect.limit(TRIAGE, args.triage_limit)
        store_url = os.environ["REMEDIATE_STORE__URL"]
        exits.enter_context(resolving_held_incidents(store_url))
        print(f"stack up, two runners polling, in {time.monotonic() - began:.1f} s", flush=True)

        cluster = sandbox.cluster
        add_fleet(cluster, ["solo-0", "solo-1", *names])
        wait_for("the fleet rolled out", lambda: settled(cluster, names), SETTLE_SECONDS, 0.2)
        token = stack.env["REMEDIATE_INTAKE_TOKEN"]
        intake = exits.enter_context(
            httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        )

        def post(body: dict[str, Any]) -> httpx.Response:
            return intake.post(stack.intake_url, json=body)

        warm = one_incident("solo-0", sandbox, clock, post, prefect)
        print(single_line("warm-up incident (not counted)", warm), flush=True)
        single = one_incident("solo-1", sandbox, clock, post, prefect)
        print(single_line("one incident alone", single), flush=True)

        # The storm.
        pods = crash_one_pod_each(cluster, names)
        deployment_of = dict(pods)
        wait_for("every crash loop", lambda: crash_looping(cluster, pods), SETTLE_SECONDS, 0.2)
        bodies = notifications(sorted(pods, key=lambda p: deployment_of[p]), waves_of(n))
        runners = runner_pids(stack, second)
        load_before = os.getloadavg()
        busy_before = machine_busy()
        mark = clock.mark()
        with RunProcesses(runners) as seen:
            storm = send_storm(bodies, post)
            print(
                f"storm sent: {storm.posts} notifications ({len(bodies)} x 2 replicas, groups of"
                f" {', '.join(str(len(b['alerts'])) for b in bodies)} alerts) in"
                f" {storm.sent_in:.2f} s, answers {dict(storm.answers)}, runs queued"
                f" {storm.runs_queued}",
                flush=True,
            )

            def all_restarted() -> bool:
                return len(clock.restarts(mark)) >= n

            try:
                wait_for("every restart", all_restarted, STORM_SECONDS, 0.2)
            except TimeoutError as exc:
                print(f"NOT every Deployment restarted: {exc}")

            def runs_ended() -> list[dict[str, Any]] | None:
                runs = prefect.triage_runs(storm.began - 1)
                done = len(runs) >= n and all(r["state_type"] in FINAL for r in runs)
                return runs if done else None

            try:
                runs = wait_for("every run's end", runs_ended, STORM_SECONDS, 1.0)
            except TimeoutError as exc:
                print(f"NOT every run ended: {exc}")
                runs = prefect.triage_runs(storm.began - 1)
        busy = [a - b for a, b in zip(machine_busy(), busy_before, strict=True)]
        load_after = os.getloadavg()

        restarts = clock.restarts(mark)
        requests = clock.count(mark)
        timelines = []
        by_deployment = {}
        for run in runs:
            t = prefect.timeline(run)
            pod = run["parameters"]["alerts"]["alerts"][0]["labels"]["pod"]
            t.deployment = deployment_of.get(pod, pod)
            t.alerted = storm.answered.get(pod, storm.began)
            t.restart = min(restarts.get(t.deployment, [0.0])) or None
            t.runner = seen.owner.get(t.run_id[:8], "?")
            timelines.append(t)
            by_deployment[t.deployment] = t
        with session_for(store_url, read_only=True) as session:
            incidents = list(
                session.exec(select(Incident).where(col(Incident.target).in_(names))).all()
            )
        report(
            n=n,
            single=single,
            storm=storm,
            restarts=restarts,
            names=names,
            timelines=timelines,
            incidents=incidents,
            seen=seen,
            skipped=polls_at_capacity(
                [logs / "served-deployments.log", logs / "served-deployments-2.log"]
            ),
            limits=(args.runner_limit, triage_limit, budget),
            requests=requests,
            machine=(load_before, load_after, busy),
        )


def report(
    *,
    n: int,
    single: Single,
    storm: Storm,
    restarts: dict[str, list[float]],
    names: list[str],
    timelines: list[Timeline],
    incidents: list[Incident],
    seen: RunProcesses,
    skipped: dict[str, int],
    limits: tuple[int | None, int | None, int],
    requests: int,
    machine: tuple[tuple[float, ...], tuple[float, ...], list[float]],
) -> None:
    runner_limit, triage_limit, budget = limits
    counts = Counter(len(restarts.get(name, [])) for name in names)
    mitigated = [t for t in timelines if t.restart is not None]
    last = max((min(ts) for ts in restarts.values()), default=storm.began)
    per_incident = [t.restart - t.alerted for t in mitigated if t.restart is not None]
    statuses = Counter(str(i.status) for i in incidents)
    per_tag = Counter(t.deployment for t in timelines)
    print(f"\n{n} incidents at once, two runners (served deployments), every guard on")
    print(
        f"  limits: per runner {runner_limit or 5} runs at once (PREFECT_RUNNER_PROCESS_LIMIT"
        f"{'' if runner_limit else ', Prefect default'}); triage deployment concurrency limit"
        f" {triage_limit if triage_limit is not None else 'none'}; budget {budget} changes/h"
    )
    print(
        f"  exactly once: restarts per Deployment {dict(sorted(counts.items()))} (want {{1: {n}}});"
        f" incidents {len(incidents)} {dict(statuses)}; triage runs {len(timelines)},"
        f" one per Deployment {sorted(per_tag.values()) == [1] * n},"
        f" states {dict(Counter(t.state for t in timelines))},"
        f" executed once {all(t.run_count == 1 for t in timelines)}"
    )
    print(
        f"  time to the last mitigation: {last - storm.began:.2f} s from the first POST"
        f" (one incident alone: {single.latency:.2f} s from its 2xx to its restart)"
    )
    print(f"  each incident, 2xx to its restart:   {spread(per_incident)}")
    print(f"  one incident alone, same:            {single.latency:6.2f} s")
    print(
        f"  requests to the cluster: {requests} ({requests / n:.0f} per incident; one incident"
        f" alone: {single.requests})"
    )
    queue = [t.pending - t.created for t in timelines if t.pending]
    start = [t.running - t.pending for t in timelines if t.running and t.pending]
    to_fix = [t.restart - t.running for t in mitigated if t.running and t.restart]
    whole = [t.end - t.created for t in timelines if t.end]
    outbox = [t.created - t.alerted for t in timelines]
    print("how the runs queued (Prefect's timestamps)")
    print(f"  2xx -> run created (the outbox):      {spread(outbox)}")
    print(f"  created -> PENDING (a runner's slot): {spread(queue)}")
    print(f"  PENDING -> RUNNING (process start):   {spread(start)}")
    print(f"  RUNNING -> restart:                   {spread(to_fix)}")
    print(f"  created -> end:                       {spread(whole)}")
    spans = [(t.running, t.end) for t in timelines if t.running and t.end]
    waiting = [(t.created, t.pending) for t in timelines if t.pending]
    awaiting = sum(s.count("AwaitingConcurrencySlot") for s in (t.states for t in timelines))
    print(
        f"  most RUNNING at once: {most_at_once(spans)} by Prefect's states, {seen.most} run"
        f" processes seen at once; most waiting for a runner at once: {most_at_once(waiting)}"
    )
    print(
        f"  runs per runner: {dict(Counter(t.runner for t in timelines))}; polls that found"
        f" the runner full (its log): {skipped}; AwaitingConcurrencySlot states: {awaiting}"
    )
    load_before, load_after, busy = machine
    print(
        f"machine: {os.cpu_count()} CPUs, busy {100 * busy[0] / max(busy[1], 1e-9):.0f}% during"
        f" the storm; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    ok = (
        counts == Counter({1: n})
        and len(timelines) == n
        and all(t.state == "COMPLETED" and t.run_count == 1 for t in timelines)
    )
    print(f"every incident mitigated exactly once: {'yes' if ok else 'NO'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
