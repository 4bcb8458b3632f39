"""Alert to mitigation on the running stack: from the intake's 2xx to the mitigating request the
sandbox sees, over consecutive incidents, with every guard on, beside the same bench with the
guards' limits off and the same Kubernetes calls made directly.

The stack is `remediate up`'s own (`remediate.stack.start`): a Prefect server, the served
deployments, the intake with its outbox. Its cluster is a sandbox started here, in this process,
and handed to the stack as a kubeconfig (with the flows' sandbox settings, `flow_env`), so the
bench reads the sandbox's request journal directly: every request is stamped as it arrives.

Each incident has a target of its own: a Deployment created for it in the sandbox
(`alphaswarm-bench-<n>`, alphaswarm-core's spec under another name and label), so a guard never
has to be turned off for one Deployment to be restarted twenty times: the cooldown, the circuit
breaker and the lease are per target, and the budget counts every change of the run (the bench
refuses to send more incidents than it allows). Once the target's pods are ready, one of them is
made to crash-loop (alphaswarm-core's corrupt-cache crash, `crashloop-single`); once it shows a
repeated crash, as Alertmanager's KubePodCrashLooping would, the real-format payload naming that
pod is POSTed to the intake. The latency runs from the 2xx to the arrival of the triage run's
restart, the non-dry-run PATCH of the Deployment's restartedAt annotation. Once the run has seen
the fix hold, the bench sends Alertmanager's resolved notification for the alert (an incident
resolves only when its fix held and its alerts resolved), waits for the incident to resolve
with its report, and scales the target to zero.

Two phases, in this order, each on a stack of its own (its own Prefect server, store and
intake; the same sandbox): **guards on**, the headline (the kill switch read before each
change, the scope, the lease, the cooldown, the circuit breaker, the hourly budget, the blast
radius, all at their defaults), then **guards off** (REMEDIATE_SAFETY__* cooldown 0, per-target
and hourly limits 1000). `--phases on` or `--phases off` runs one.

Each latency is broken down from the triage run's own record in Prefect (server timestamps):
the intake's answer, the outbox creating the run (2xx to the run's creation), the runner's poll
picking it up (creation to PENDING), the run's process starting (PENDING to RUNNING), and the
flow: to its first request to the cluster (the engine starting the run, the alert recorded),
then to the PATCH (the probes, the decision and its records, the scenario's subflow, the
restart), with the Prefect task runs and subflow runs it took to get there.

The stack is ready when `remediate up` says so, but its runner may still be registering the
other deployments: the bench waits until the triage deployment is polled (READY in Prefect),
pauses the health sweep's schedule (the sweep would find the bench's crash loops too and open
incidents of its own on the same target, which the next alert would join instead of starting a
run), then sends one warm-up incident, reported apart: the first run after a start pays for what
starts once (connections; and it starts cold if the warm process is still importing).
`--cold` starts the stack with REMEDIATE_WARM_START=0, every run a new interpreter as Prefect
does it (deployments/warm_start.py), for the before/after figures.

The baseline, measured in the same run after each incident, replays the requests that incident's
triage run sent to the sandbox up to and including the PATCH (some 60: the probes' reads, pod
logs and execs, the JWKS document, then the restart with a fresh restartedAt), one after another
through the Kubernetes client on the same kubeconfig: the floor the same work costs without
orchestration.

`--prefect-db postgresql` puts the Prefect server on a private PostgreSQL server instead of its
default SQLite file. On SQLite, creating a subflow's parent task run (and sometimes a run from
the outbox) often meets "database is locked" (the server's own recorders write at the same time),
answered 503: Prefect's client would retry after 2 s, then 4 s; `remediate.prefect_server`
retries it in the server within milliseconds.

Run: `.venv/bin/python bench/alert_to_mitigation.py [--incidents 20] [--phases on,off] [--cold]
[--prefect-db sqlite|postgresql] [--logs DIR]`. Exit 1 when the guards-on figure misses the
goal (p50 under 1 s, p95 under 1.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as kubernetes_client
from kubernetes import config as kubeconfig_loader
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_api import PrefectApi
from stack_env import hermetic

from remediate.stack import SANDBOX_TICK_SECONDS, StackOptions, start
from sandbox.alerts import crashloop_alert, webhook
from sandbox.cluster import SandboxCluster
from sandbox.flow_env import flow_env
from sandbox.incident_logs import CORRUPT_CACHE_LOG
from sandbox.journal import Journal, Request
from sandbox.resources import DEPLOYMENT, POD
from sandbox.server import SandboxServer
from sandbox.shapes import is_active, is_crashing, is_ready, workload_of
from store.engine import session_for
from store.incidents import get_incident
from store.models import Incident, IncidentStatus, TriageOutbox
from tasks.settings import Settings

NAMESPACE, TEMPLATE = "alphaswarm", "alphaswarm-core"
TARGET_PREFIX = "alphaswarm-bench-"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
SYMPTOMS_SECONDS = 60.0
MITIGATION_SECONDS = 120.0
RESOLVE_SECONDS = 180.0
SETTLE_SECONDS = 60.0
READY_SECONDS = 120.0
SWEEP = "health-sweep/health-sweep"
POLL = 0.005  # how often the bench looks at the journal and the store


@dataclass(frozen=True)
class Stamped:
    """A request as the sandbox received it, and when (time.perf_counter)."""

    index: int
    at: float
    request: Request


class JournalClock:
    """Stamps every request the sandbox journals with its arrival time."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._stamped: list[Stamped] = []
        record = journal.record

        def stamped(request: Request) -> int:
            at = time.perf_counter()
            index = record(request)
            with self._lock:
                self._stamped.append(Stamped(index, at, request))
            return index

        journal.record = stamped  # type: ignore[method-assign]

    def mark(self) -> int:
        with self._lock:
            return len(self._stamped)

    def since(self, mark: int) -> list[Stamped]:
        with self._lock:
            return self._stamped[mark:]

    def status(self, index: int) -> int:
        return self._journal.requests()[index].status


def restart_path(target: str) -> str:
    return f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{target}"


def is_restart(r: Request, target: str) -> bool:
    return r.method == "PATCH" and r.path == restart_path(target) and not r.dry_run


@dataclass
class Sample:
    answer: float  # POST to the intake's 2xx
    latency: float  # 2xx to the restart's arrival
    outbox: float  # 2xx to the triage run's creation in Prefect
    pickup: float  # creation to PENDING (the runner's poll)
    process: float  # PENDING to RUNNING (the run's process starting)
    first_request: float  # RUNNING to the run's first request to the cluster
    to_patch: float  # from there to the restart's arrival
    tasks: int  # Prefect task runs started before the restart
    subflows: int  # and subflow runs
    baseline: float  # the same requests, replayed directly
    calls: list[Request]

    @property
    def flow(self) -> float:
        return self.first_request + self.to_patch

    def line(self) -> str:
        return (
            f"{self.latency * 1000:6.0f} ms (answer {self.answer * 1000:.0f}, outbox"
            f" {self.outbox * 1000:.0f}, pickup {self.pickup * 1000:.0f}, process"
            f" {self.process * 1000:.0f}, flow {self.first_request * 1000:.0f}"
            f" + {self.to_patch * 1000:.0f} with {self.tasks} tasks and {self.subflows}"
            f" subflow(s)); direct {self.baseline * 1000:.0f} ms for {len(self.calls)} requests"
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def wait(what: str, ready: Callable[[], Any], timeout: float, poll: float = POLL) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = ready()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(poll)


def target_pods(cluster: SandboxCluster, target: str) -> list[dict[str, Any]]:
    pods, _ = cluster.store.list(POD, NAMESPACE)
    return [p for p in pods if workload_of(p) == target and is_active(p)]


def settled(cluster: SandboxCluster, target: str) -> bool:
    """The Deployment is rolled out, every pod of it ready, none crashing."""
    d = cluster.store.get(DEPLOYMENT, NAMESPACE, target)
    if d is None:
        return False
    status, want = d.get("status") or {}, d["spec"]["replicas"]
    rolled = status.get("observedGeneration") == d["metadata"].get("generation") and all(
        status.get(k) == want for k in ("replicas", "updatedReplicas", "readyReplicas")
    )
    pods = target_pods(cluster, target)
    return rolled and len(pods) == want and all(is_ready(p) and not is_crashing(p) for p in pods)


def crashing_pod(cluster: SandboxCluster, target: str) -> str | None:
    """A pod of the target crash-looping as KubePodCrashLooping sees it: in back-off or just
    died, after at least one restart."""
    for pod in target_pods(cluster, target):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        restarted = any((cs.get("restartCount") or 0) >= 1 for cs in statuses)
        if is_crashing(pod) and restarted:
            return str(pod["metadata"]["name"])
    return None


class Targets:
    """One Deployment per incident, alphaswarm-core's spec under another name, so each restart
    has a target no earlier change touched: every guard stays on."""

    def __init__(self, kubeconfig: Path, cluster: SandboxCluster) -> None:
        self._api = kubeconfig_loader.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self._apps = kubernetes_client.AppsV1Api(self._api)
        self._cluster = cluster
        self._made = 0
        self._ready: str | None = None

    def next(self) -> str:
        """The incident's target: the one made during the last incident, or a new one."""
        found, self._ready = self._ready, None
        return found or self.create()

    def prepare(self) -> None:
        """Make the next incident's target now (its pods start while this run finishes)."""
        if self._ready is None:
            self._ready = self.create()

    def close(self) -> None:
        self._api.close()

    def create(self) -> str:
        self._made += 1
        name = f"{TARGET_PREFIX}{self._made}"
        template = self._cluster.store.get(DEPLOYMENT, NAMESPACE, TEMPLATE)
        assert template is not None, "the sandbox is seeded with alphaswarm-core"
        spec = json.loads(json.dumps(template["spec"]))
        labels = {"app": name, "app.kubernetes.io/part-of": "alphaswarm"}
        spec["selector"] = {"matchLabels": labels}
        spec["template"]["metadata"] = {"labels": labels}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": spec,
        }
        self._apps.create_namespaced_deployment(NAMESPACE, body)  # type: ignore[arg-type]
        return name

    def crash(self, target: str) -> None:
        """The first pod exits on every start (crashloop-single's corrupt cache)."""
        pod = sorted(target_pods(self._cluster, target), key=lambda p: p["metadata"]["name"])[0]
        self._cluster.behaviour.set_pod(
            pod["metadata"]["uid"], crash_looping=True, crash_log=CORRUPT_CACHE_LOG, exit_code=3
        )

    def retire(self, target: str) -> None:
        """Scaled to zero: its pods leave the namespace's pod lists the next probes read."""
        self._apps.patch_namespaced_deployment_scale(target, NAMESPACE, {"spec": {"replicas": 0}})


class Prefect(PrefectApi):
    """The triage run's record, read from the Prefect API."""

    def timeline(self, flow_run_id: str) -> dict[str, float]:
        """created, PENDING, RUNNING as epoch seconds."""
        run = self.call("GET", f"/flow_runs/{flow_run_id}")
        states = self.call("GET", "/flow_run_states/", params={"flow_run_id": flow_run_id})
        found = {"created": _epoch(run["created"])}
        for state in sorted(states, key=lambda s: s["timestamp"]):
            found.setdefault(state["type"], _epoch(state["timestamp"]))
        return found

    def started_between(self, kind: str, after: float, before: float) -> int:
        """How many task or flow runs (`kind`) started in the interval (epoch seconds)."""
        window = {"after_": _iso(after), "before_": _iso(before)}
        return int(self.call("POST", f"/{kind}/count", json={kind: {"start_time": window}}))


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _starts(alert: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(alert["startsAt"]).replace("Z", "+00:00"))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def triage_run(store_url: str, incident_id: int) -> str | None:
    with session_for(store_url) as session:
        row = session.exec(
            select(TriageOutbox).where(TriageOutbox.incident_id == incident_id)
        ).first()
        return row.flow_run_id if row else None


def held(store_url: str, incident_id: int) -> bool:
    """The triage run saw the fix hold (or the incident ended without it)."""
    with session_for(store_url) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        return incident.held_at is not None or incident.status in (
            IncidentStatus.RESOLVED,
            IncidentStatus.ESCALATED,
        )


def ended(store_url: str, incident_id: int) -> IncidentStatus | None:
    with session_for(store_url) as session:
        incident = get_incident(session, incident_id=incident_id)
    done = incident.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED)
    return incident.status if done and incident.report_path else None


class Replay:
    """The same requests, sent one after another through the Kubernetes client."""

    def __init__(self, kubeconfig: Path) -> None:
        config = str(kubeconfig)
        self._api = kubeconfig_loader.new_client_from_config(config_file=config)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._api.close()

    def send(self, r: Request) -> None:
        body = r.body
        if r.method == "PATCH" and not r.dry_run and RESTARTED_AT in json.dumps(body):
            body = json.loads(json.dumps(body))
            annotations = body["spec"]["template"]["metadata"]["annotations"]
            annotations[RESTARTED_AT] = datetime.now(UTC).isoformat(timespec="seconds")
        query = [(k, v) for k, values in r.query.items() for v in values]
        headers = {"Accept": "application/json"}
        if r.content_type:
            headers["Content-Type"] = r.content_type
        method, url, headers, payload, post = self._api.param_serialize(
            r.method,
            r.path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        answer = self._api.call_api(method, url, headers, payload, post)
        answer.read()


def one_incident(
    sandbox: SandboxServer,
    targets: Targets,
    clock: JournalClock,
    intake: httpx.Client,
    intake_url: str,
    prefect: Prefect,
    replay: Replay,
    store_url: str,
    wall_offset: float,
) -> Sample:
    cluster = sandbox.cluster
    target = targets.next()
    wait("settled rollout", lambda: settled(cluster, target), SETTLE_SECONDS, 0.05)
    targets.crash(target)
    pod = wait("crashing pod", lambda: crashing_pod(cluster, target), SYMPTOMS_SECONDS, 0.05)
    alert = crashloop_alert(NAMESPACE, pod)
    body = webhook([alert])

    mark = clock.mark()
    posted = time.perf_counter()
    answer = intake.post(intake_url, json=body)
    answered = time.perf_counter()
    answer.raise_for_status()
    incidents = answer.json()["incidents"]
    if len(incidents) != 1 or answer.json()["runs_queued"] != 1:
        raise RuntimeError(f"expected a new incident and its run, the intake said {answer.json()}")

    def restart() -> Stamped | None:
        return next((s for s in clock.since(mark) if is_restart(s.request, target)), None)

    patch = wait("restart", restart, MITIGATION_SECONDS)
    targets.prepare()  # after the measured part: the next target's pods start meanwhile
    # What Alertmanager sends once Prometheus sees the crash loop gone: only after the run saw
    # the fix hold, so an incident whose fix did not hold still fails the bench.
    wait("the fix held", lambda: held(store_url, incidents[0]), RESOLVE_SECONDS, 0.05)
    resolved = crashloop_alert(
        NAMESPACE, pod, status="resolved", starts_at=_starts(alert), ends_at=datetime.now(UTC)
    )
    intake.post(intake_url, json=webhook([resolved])).raise_for_status()
    status = wait("incident end", lambda: ended(store_url, incidents[0]), RESOLVE_SECONDS, 0.1)
    if status != IncidentStatus.RESOLVED or not 200 <= clock.status(patch.index) < 300:
        raise RuntimeError(f"incident {incidents[0]} {status}, restart {clock.status(patch.index)}")
    flow_run_id = triage_run(store_url, incidents[0])
    assert flow_run_id is not None
    times = prefect.timeline(flow_run_id)
    answered_wall = answered + wall_offset
    patch_wall = patch.at + wall_offset
    first = clock.since(mark)[0]

    calls = [s.request for s in clock.since(mark) if s.index <= patch.index]
    wait("settled rollout", lambda: settled(cluster, target), SETTLE_SECONDS, 0.05)
    replay_mark = clock.mark()
    began = time.perf_counter()
    for r in calls:
        replay.send(r)
    replayed = next(s for s in clock.since(replay_mark) if is_restart(s.request, target))
    targets.retire(target)

    return Sample(
        answer=answered - posted,
        latency=patch.at - answered,
        outbox=times["created"] - answered_wall,
        pickup=times["PENDING"] - times["created"],
        process=times["RUNNING"] - times["PENDING"],
        first_request=first.at + wall_offset - times["RUNNING"],
        to_patch=patch.at - first.at,
        tasks=prefect.started_between("task_runs", times["RUNNING"], patch_wall),
        subflows=prefect.started_between("flow_runs", times["RUNNING"] + 0.001, patch_wall),
        baseline=replayed.at - began,
        calls=calls,
    )


def row(name: str, values: list[float]) -> str:
    return (
        f"  {name:<26} p50 {statistics.median(values) * 1000:8.0f} ms"
        f"   p95 {percentile(values, 0.95) * 1000:8.0f} ms"
        f"   max {max(values) * 1000:8.0f} ms"
    )


def prefect_on_postgres(exits: ExitStack) -> str:
    """A private PostgreSQL server for the Prefect server (the tests' throwaway one: durability
    off, so its commits are cheaper than a production server's)."""
    from tests.postgres_server import PostgresServer

    server = exits.enter_context(PostgresServer())
    return f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/postgres"


GOAL_P50, GOAL_P95 = 1.0, 1.5
# The guards' limits off: what the bench turned off before it had a target per incident.
GUARDS_OFF = {
    "REMEDIATE_SAFETY__COOLDOWN_SECONDS": "0",
    "REMEDIATE_SAFETY__MAX_CHANGES_PER_TARGET": "1000",
    "REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR": "1000",
}
PHASES = {"on": "guards on", "off": "guards off (REMEDIATE_SAFETY__* limits off)"}


def report(phase: str, samples: list[Sample], warmup: Sample | None, how: str) -> None:
    latency = [s.latency for s in samples]
    baseline = [s.baseline for s in samples]
    print(f"\nalert to mitigation, {PHASES[phase]}: {len(samples)} incidents, {how}")
    print("(from the intake's 2xx to the restart PATCH arriving at the cluster)")
    print(row("stack", latency))
    print(row("direct (same requests)", baseline))
    print(
        f"  ratio p50 {statistics.median(latency) / statistics.median(baseline):.1f}x"
        f"   p95 {percentile(latency, 0.95) / percentile(baseline, 0.95):.1f}x"
    )
    print("breakdown")
    print(row("intake answer (POST->2xx)", [s.answer for s in samples]))
    print(row("outbox -> run created", [s.outbox for s in samples]))
    print(row("runner poll pickup", [s.pickup for s in samples]))
    print(row("process start", [s.process for s in samples]))
    print(row("flow to its first request", [s.first_request for s in samples]))
    print(row("flow from there to PATCH", [s.to_patch for s in samples]))
    tasks = statistics.median([s.tasks for s in samples])
    subflows = statistics.median([s.subflows for s in samples])
    print(f"  until the PATCH the flow ran {tasks:.0f} tasks, {subflows:.0f} subflow(s) (median)")
    if warmup is not None:
        print(f"first incident after the start (not counted): {warmup.line()}")


def verdict(samples: list[Sample]) -> bool:
    latency = [s.latency for s in samples]
    p50, p95 = statistics.median(latency), percentile(latency, 0.95)
    passed = p50 < GOAL_P50 and p95 < GOAL_P95
    print(
        f"\n{'PASS' if passed else 'FAIL'}: guards on, p50 {p50 * 1000:.0f} ms"
        f" (goal < {GOAL_P50 * 1000:.0f}), p95 {p95 * 1000:.0f} ms"
        f" (goal < {GOAL_P95 * 1000:.0f})"
    )
    return passed


def run_phase(
    phase: str,
    args: argparse.Namespace,
    sandbox: SandboxServer,
    targets: Targets,
    clock: JournalClock,
    state: Path,
) -> tuple[list[Sample], Sample | None]:
    """One stack, started for the phase and stopped after it."""
    with ExitStack() as exits:
        exits.enter_context(hermetic(state))
        if args.logs is not None:
            logs, kept = state / "stack" / "logs", args.logs / phase
            exits.callback(lambda: shutil.copytree(logs, kept, dirs_exist_ok=True))
        kubeconfig = sandbox.write_kubeconfig(state / "kubeconfig.yaml")
        os.environ.update(flow_env(sandbox.url, sandbox.cluster, kubeconfig))
        if args.cold:
            os.environ["REMEDIATE_WARM_START"] = "0"
        if phase == "off":
            os.environ.update(GUARDS_OFF)
        else:
            budget = Settings().safety.max_changes_per_hour
            if args.incidents + args.warmup > budget:
                raise SystemExit(
                    f"{args.incidents + args.warmup} restarts in one run is over the hourly "
                    f"budget ({budget}) the guards-on phase keeps: send fewer incidents"
                )
        if args.prefect_db == "postgresql":
            os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_on_postgres(exits)

        began = time.monotonic()
        say = print if args.verbose else (lambda _: None)
        options = StackOptions(
            state_dir=state, kubeconfig=kubeconfig, prefect_port=0, intake_port=0, sample=False
        )
        stack = start(options, say, exits)
        prefect = Prefect(stack.api_url)
        exits.callback(prefect.close)
        triage = Settings().intake.triage_deployment
        wait("the runner's first poll", lambda: prefect.polled(triage), READY_SECONDS, 0.2)
        # Every 5 minutes the sweep would find the bench's crash loop too, open an incident of
        # its own for the target, and the bench's next alert would join it instead of starting
        # a run: the incidents here are the alerts'.
        prefect.pause(SWEEP)
        print(f"{PHASES[phase]}: stack up and polling in {time.monotonic() - began:.1f} s")

        token = stack.env["REMEDIATE_INTAKE_TOKEN"]
        intake = exits.enter_context(
            httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        )
        replay = Replay(kubeconfig)
        exits.callback(replay.close)
        store_url = os.environ["REMEDIATE_STORE__URL"]
        wall_offset = time.time() - time.perf_counter()

        def incident() -> Sample:
            return one_incident(
                sandbox,
                targets,
                clock,
                intake,
                stack.intake_url,
                prefect,
                replay,
                store_url,
                wall_offset,
            )

        warmup = None
        for i in range(args.warmup):
            warmup = incident()
            print(f"  warm-up {i + 1}: {warmup.line()}", flush=True)
        samples: list[Sample] = []
        for i in range(args.incidents):
            s = incident()
            samples.append(s)
            print(f"  incident {i + 1:2}: {s.line()}", flush=True)
            if args.calls and i == 0:
                for r in s.calls:
                    print(f"    {r.method} {r.path}{' (dry run)' if r.dry_run else ''}")
        return samples, warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="incidents sent first, not counted")
    parser.add_argument(
        "--phases",
        default="on,off",
        help="on: every guard on (the headline); off: the guards' limits off; in this order",
    )
    parser.add_argument("--cold", action="store_true", help="REMEDIATE_WARM_START=0 for serve")
    parser.add_argument(
        "--prefect-db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the Prefect server's database (postgresql: a private throwaway server)",
    )
    parser.add_argument("--logs", type=Path, help="keep each phase's stack logs in this folder")
    parser.add_argument("--verbose", action="store_true", help="print the stack's progress")
    parser.add_argument("--calls", action="store_true", help="list the first incident's requests")
    args = parser.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not phases or any(p not in PHASES for p in phases):
        parser.error("--phases takes on, off or both: on,off")
    # A SIGTERM (`timeout`, Ctrl-C's cousin) unwinds like Ctrl-C: the stack's processes stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results: dict[str, tuple[list[Sample], Sample | None]] = {}
    with tempfile.TemporaryDirectory(prefix="alert-to-mitigation-") as tmp, ExitStack() as exits:
        sandbox = exits.enter_context(SandboxServer(tick_seconds=SANDBOX_TICK_SECONDS))
        clock = JournalClock(sandbox.cluster.journal)
        targets = Targets(sandbox.write_kubeconfig(Path(tmp) / "kubeconfig.yaml"), sandbox.cluster)
        exits.callback(targets.close)
        for phase in phases:
            results[phase] = run_phase(phase, args, sandbox, targets, clock, Path(tmp) / phase)
    how = "cold starts: a new interpreter per run" if args.cold else "warm starts (forkserver)"
    how += f", Prefect on {args.prefect_db}"
    for phase, (samples, warmup) in results.items():
        report(phase, samples, warmup, how)
    side_by_side(results)
    if "on" in results and not verdict(results["on"][0]):
        raise SystemExit(1)


def side_by_side(results: dict[str, tuple[list[Sample], Sample | None]]) -> None:
    """The phases' figures in one table, with the direct requests of every incident."""
    print("\nsummary, ms          p50     p95     max")
    everything: list[Sample] = []
    for phase, (samples, _) in results.items():
        everything += samples
        latency = [s.latency * 1000 for s in samples]
        print(
            f"  {'guards ' + phase:<16} {statistics.median(latency):7.0f} "
            f"{percentile(latency, 0.95):7.0f} {max(latency):7.0f}"
        )
    direct = [s.baseline * 1000 for s in everything]
    print(
        f"  {'direct requests':<16} {statistics.median(direct):7.0f} "
        f"{percentile(direct, 0.95):7.0f} {max(direct):7.0f}"
    )


if __name__ == "__main__":
    main()
