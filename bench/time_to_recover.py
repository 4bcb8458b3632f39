"""Time to recover: every runbook scenario injected into the running loop of `remediate up`, one
after the other, broken down from the injection to the incident's resolution, beside the same
runbook step made with kubectl by hand.

The stack is `remediate up` itself, a child process on free ports with a temporary state dir:
the Prefect server, the served deployments, the intake, the sandbox (in `up`'s process, driven
over its HTTP API: `POST /sandbox/v1/incidents/<name>` injects, `DELETE` heals) and the monitoring
loop: Prometheus scraping the sandbox's exporters with infra/prometheus's rules at rehearsal
speed (`--speed`, every `for:`, range and interval divided by it), two clustered Alertmanagers
notifying the intake. Nothing posts an alert by hand: each one comes from Prometheus.

Each scenario, in turn (the cluster healed, no alert pending or firing, the previous incident
ended): inject, then every figure is seconds since the injection, read from the records each
part keeps:

    series     the first evaluation at which the rule's expression held (Prometheus's
               ALERTS{alertstate="pending"} sample for the expected alertname)
    firing     the first evaluation with ALERTS{alertstate="firing"}: `for:` had passed
    notified   the intake stored the firing alert (alert_receipt.received_at)
    triage     the triage run started (its Prefect flow run's start_time)
    mitigate   the change was sent (incident_action.started_at, written just before it)
    recovered  the sandbox no longer shows the symptom: the same check as the direct baseline's,
               polled every 0.2 s once a change was sent, and the start of the first stretch
               it held for 5 s (a crash-looping pod runs, even Ready, between two crashes)
    verified   the incident's `verified` transition (the flow proved the fix)
    res.notif  the intake stored the alert's resolved notification
    resolved   the incident's `resolved` transition (the fix held and its alerts resolved)

jwks-503 (D) and postgres-down pause for a human's approval: the bench approves every paused run
at once through the Prefect API (`POST /flow_runs/<id>/resume`), and the run notices on its next
poll (every 10 s), so that wait is inside their figures (printed apart). D's incident stays
verified while Auth0 is down (its probe alert keeps firing): the bench stops following it once
it is verified, so D has no resolved figures.

Before the scenarios, one crashloop-single goes through the loop uncounted (`--warmup`): the
first run after the start pays for what starts once. The default order puts D after the others
(its outage outlasts its run) and E last (see DEFAULT_SCENARIOS).

The direct baseline, after each scenario: the scenario injected again with Alertmanager silenced
(so no notification, no triage run), and as soon as the symptom shows, the runbook's mitigation
(sandbox/injections.py, Incident.mitigation) run with kubectl on the sandbox's kubeconfig, timed
until the same recovery check holds (the start of its 5 s stretch, as above). No reaction time:
the command starts the moment the symptom can be seen.

To measure each scenario on a clean target: the health sweep's schedule is paused (it would open
incidents of its own), the cooldown, circuit breaker and budget are opened up
(`REMEDIATE_SAFETY__*`: A, B, D restart the same Deployment minutes apart) and the relapse window
is 0 (B after A on alphaswarm-core would reopen A's incident as a relapse, by design).

Bounded: each scenario's loop run gives up after `--timeout` (180 s), the baseline after 120 s,
each wait for a quiet cluster after 90 s, and the whole bench stops itself (SIGALRM) after the
sum of those; `remediate up` and everything it started stop with it.

Measured here at speed 60 (2 vCPUs shared with other work), injection to resolved through the
loop against injection to recovered by kubectl: A 29.8 s / 3.2 s, B 26.5 / 3.3, C 31.1 / 1.1,
F redis 7.3 / 2.2, F postgres 18.0 / 2.0 (approval inside), E 12.8 / 0.8; D verified at 16.4 s
(approval inside) / 2.6. Most of the loop's time is the rules' `for:` (15 s for the crash loops,
20 s for the queue at speed 60), then the resolved side (the 5 s range, group_interval 5 s).

Run: `.venv/bin/python bench/time_to_recover.py [--speed 60] [--scenarios a,b,...]
[--json PATH] [--timeout 180] [--warmup 1] [--logs DIR] [--verbose]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_api import PrefectApi

from sandbox import injections
from sandbox.api_sandbox import INCIDENTS_PATH
from sandbox.auth0 import JWKS_PATH
from sandbox.shapes import is_active, is_crashing, is_ready, is_terminating
from store.engine import session_for
from store.models import (
    ActionStatus,
    AlertReceipt,
    EventKind,
    Incident,
    IncidentAction,
    IncidentAlert,
    IncidentEvent,
    IncidentStatus,
    TriageOutbox,
)

REMEDIATE = str(Path(sys.executable).with_name("remediate"))
NS = "alphaswarm"
START_SECONDS = 240.0  # `remediate up` to its last line (a fresh Prefect database is migrated)
QUIET_SECONDS = 90.0  # heal, then no alert pending or firing and every pod ready
SHOW_SECONDS = 60.0  # the baseline's injection to its symptom
DIRECT_SECONDS = 120.0  # the baseline's command to recovery
POLL = 0.2  # the sandbox's tick
# A crash-looping pod runs, even Ready, between two crashes (a cycle is at most 23 ticks, 4.6 s):
# "recovered" is the start of the first stretch over which the check held this long.
STEADY_SECONDS = 5.0
SWEEP = "health-sweep/health-sweep"
APPROVAL = {"approved": True, "approver": "bench", "comment": ""}
QUEUE_ALARM = 100.0  # CeleryHighQueueLength's threshold (infra/prometheus)
BENCH_ENV = {
    "REMEDIATE_SAFETY__COOLDOWN_SECONDS": "0",
    "REMEDIATE_SAFETY__MAX_CHANGES_PER_TARGET": "1000",
    "REMEDIATE_SAFETY__MAX_CHANGES_PER_HOUR": "1000",
    "REMEDIATE_INCIDENTS__RELAPSE_WINDOW_SECONDS": "0",
}


class BenchTimeout(Exception):
    """The whole bench ran out of its time (SIGALRM)."""


class Steady:
    """When a check began to hold for good: the start of the first stretch of polls over which
    it held STEADY_SECONDS."""

    def __init__(self) -> None:
        self._since: float | None = None
        self.at: float | None = None

    def see(self, holds: bool, now: float) -> float | None:
        if self.at is None:
            self._since = (self._since or now) if holds else None
            if self._since is not None and now - self._since >= STEADY_SECONDS:
                self.at = self._since
        return self.at


# -- the sandbox, over HTTP ----------------------------------------------------------------------


class Kube:
    """The sandbox's Kubernetes API and its own endpoints, with the kubeconfig's token."""

    def __init__(self, kubeconfig: Path) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        self.kubeconfig = kubeconfig
        self.url = str(doc["clusters"][0]["cluster"]["server"])
        token = doc["users"][0]["user"].get("token", "")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, **params: str) -> Any:
        answer = self._http.get(path, params=params)
        if answer.status_code == 404:
            return None
        return answer.raise_for_status().json()

    def pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        items: list[dict[str, Any]] = self.get(f"/api/v1/namespaces/{namespace}/pods", **params)[
            "items"
        ]
        return items

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.get(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        )
        return found

    def ready_addresses(self, namespace: str, service: str) -> int:
        found = self.get(f"/api/v1/namespaces/{namespace}/endpoints/{service}")
        if found is None:
            return 0
        return sum(len(s.get("addresses") or []) for s in found.get("subsets") or [])

    def queue_length(self) -> float:
        """celery_queue_length summed over the queues, as the exporter serves it."""
        text = self._http.get("/exporters/celery/metrics").raise_for_status().text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("celery_queue_length{") and 'queue_name="None"' not in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def jwks_failing(self) -> bool:
        return self._http.get(JWKS_PATH).status_code != 200

    def inject(self, name: str) -> httpx.Response:
        return self._http.post(f"{INCIDENTS_PATH}/{name}")

    def heal(self) -> None:
        self._http.delete(INCIDENTS_PATH).raise_for_status()

    def kubectl(self, argv: Sequence[str]) -> float:
        """Run kubectl on the sandbox's kubeconfig; its wall time."""
        began = time.monotonic()
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(argv)}: {done.stderr.strip()}")
        return time.monotonic() - began


def _restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(cs.get("restartCount") or 0) for cs in statuses), default=0)


def crashing(kube: Kube, selector: str, *, repeated: bool = True) -> int:
    """Pods crashing now, and (as sandbox/symptoms.py counts them) not for the first time."""
    pods = kube.pods(NS, selector)
    return sum(1 for p in pods if is_crashing(p) and (not repeated or _restarts(p) >= 1))


def healthy(pod: dict[str, Any]) -> bool:
    return is_ready(pod) and not is_crashing(pod) and not is_terminating(pod)


def rolled_out(
    kube: Kube, name: str, each: Callable[[dict[str, Any]], bool] = lambda _: True
) -> bool:
    """The Deployment is rolled out: every pod of it ready and none crashing or terminating."""
    d = kube.deployment(NS, name)
    if d is None:
        return False
    status, want = d.get("status") or {}, d["spec"]["replicas"]
    done = status.get("observedGeneration") == d["metadata"].get("generation") and all(
        status.get(k) == want for k in ("replicas", "updatedReplicas", "readyReplicas")
    )
    labels = d["spec"]["selector"]["matchLabels"]
    pods = kube.pods(NS, ",".join(f"{k}={v}" for k, v in labels.items()))
    return done and len(pods) == want and all(healthy(p) and each(p) for p in pods)


def serving(kube: Kube, selector: str) -> bool:
    pods = kube.pods(NS, selector)
    return bool(pods) and all(healthy(p) for p in pods)


def permissive(pod: dict[str, Any]) -> bool:
    env = pod["spec"]["containers"][0].get("env") or []
    return any(
        v.get("name") == "ALPHASWARM_AUTH_ENFORCE" and v.get("value") == "permissive" for v in env
    )


# -- the scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    alerts: tuple[str, ...]  # what Prometheus should raise for it (the first notified counts)
    command: tuple[str, ...]  # kubectl's arguments: the runbook's mitigation
    showing: Callable[[Kube], bool]  # the symptom can be seen (the baseline acts then)
    recovered: Callable[[Kube], bool]
    recovered_text: str
    approval: bool = False  # the run pauses for a human
    stays_verified: bool = False  # its alert outlives the fix (D: Auth0 is still down)
    prepare: tuple[tuple[str, ...], ...] = ()  # untimed, before the baseline's injection
    prepared: Callable[[Kube], bool] = lambda _: True

    @property
    def branch(self) -> str:
        return injections.resolve(self.name).branch

    @property
    def mitigation(self) -> str:
        return injections.resolve(self.name).mitigation


RESTART_CORE = ("rollout", "restart", "-n", NS, "deployment/alphaswarm-core")
SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "crashloop-single",
            ("KubePodCrashLooping",),
            RESTART_CORE,
            lambda k: crashing(k, "app=alphaswarm-core") >= 1,
            lambda k: rolled_out(k, "alphaswarm-core"),
            "alphaswarm-core rolled out, every pod ready, none crashing",
        ),
        Scenario(
            "crashloop-several",
            ("KubePodCrashLooping",),
            RESTART_CORE,
            lambda k: crashing(k, "app=alphaswarm-core") >= 2,
            lambda k: rolled_out(k, "alphaswarm-core"),
            "alphaswarm-core rolled out, every pod ready, none crashing",
        ),
        Scenario(
            "queue-backlog",
            ("CeleryHighQueueLength",),
            ("scale", "-n", NS, "deployment/alphaswarm-worker", "--replicas=8"),
            lambda k: k.queue_length() > QUEUE_ALARM,
            lambda k: k.queue_length() <= QUEUE_ALARM,
            f"celery_queue_length at the exporter back to {QUEUE_ALARM:g} or below",
            # The loop's run left 8 workers: back to the seed's 2, or nothing backs up.
            prepare=(("scale", "-n", NS, "deployment/alphaswarm-worker", "--replicas=2"),),
            prepared=lambda k: rolled_out(k, "alphaswarm-worker"),
        ),
        Scenario(
            "redis-down",
            ("RedisDown",),
            ("-n", NS, "delete", "pod", "redis-master-0"),
            lambda k: crashing(k, "app=redis") >= 1 and crashing(k, "app=alphaswarm-worker") >= 1,
            lambda k: serving(k, "app=redis") and serving(k, "app=alphaswarm-worker"),
            "redis-master-0 and every worker pod ready, none crashing",
        ),
        Scenario(
            "postgres-down",
            ("PostgresqlDown", "KubeStatefulSetReplicasMismatch"),
            ("-n", NS, "delete", "pod", "-l", "app=postgres"),
            lambda k: crashing(k, "app=postgres") >= 1,
            lambda k: serving(k, "app=postgres"),
            "postgres-0 ready, not crashing",
            approval=True,
        ),
        Scenario(
            "jwks-503",
            ("BlackboxProbeFailed",),
            (
                "set",
                "env",
                "-n",
                NS,
                "deploy/alphaswarm-core",
                "ALPHASWARM_AUTH_ENFORCE=permissive",
            ),
            lambda k: k.jwks_failing(),
            lambda k: rolled_out(k, "alphaswarm-core", permissive),
            "alphaswarm-core rolled out with ALPHASWARM_AUTH_ENFORCE=permissive, every pod ready",
            approval=True,
            stays_verified=True,
            # The loop's run left it permissive: back to enforce, or `set env` changes nothing.
            prepare=(
                (
                    "set",
                    "env",
                    "-n",
                    NS,
                    "deploy/alphaswarm-core",
                    "ALPHASWARM_AUTH_ENFORCE=enforce",
                ),
            ),
            prepared=lambda k: rolled_out(k, "alphaswarm-core"),
        ),
        Scenario(
            "ingress-503",
            ("NginxHighHttp5xxErrorRate", "BlackboxProbeFailed"),
            ("rollout", "restart", "-n", NS, "deployment/alphaswarm-client"),
            lambda k: k.ready_addresses(NS, "alphaswarm-client") == 0,
            lambda k: k.ready_addresses(NS, "alphaswarm-client") > 0,
            "Endpoints alphaswarm-client has a ready address again",
        ),
    )
}
# In this order: D's outage outlasts its run (tests/stack/test_secrets_canary.py puts it last
# too), and E comes after it because its two alerts open two incidents that triage merges,
# deleting the younger: on SQLite the next incident gets the deleted one's id, whose triage
# idempotency key is already spent, and is never triaged (the bench says so when it happens).
DEFAULT_SCENARIOS = list(SCENARIOS)


# -- the other parts' records -------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10)

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = self._http.get("/api/v1/query", params={"query": promql}).raise_for_status()
        result: list[dict[str, Any]] = body.json()["data"]["result"]
        return result

    def active(self) -> list[tuple[str, str]]:
        """(alertname, alertstate) of every alert pending or firing now."""
        return [(r["metric"]["alertname"], r["metric"]["alertstate"]) for r in self.query("ALERTS")]

    def first_samples(self, since: float) -> dict[tuple[str, str], float]:
        """The earliest ALERTS sample at or after `since` per (alertname, alertstate): the
        evaluation at which each alert became pending, and firing (raw TSDB timestamps)."""
        window = math.ceil(time.time() - since) + 2
        found: dict[tuple[str, str], float] = {}
        for series in self.query(f"ALERTS[{window}s]"):
            key = (series["metric"]["alertname"], series["metric"]["alertstate"])
            stamps = [float(t) for t, _ in series["values"] if float(t) >= since]
            if stamps:
                found[key] = min(found.get(key, math.inf), min(stamps))
        return found

    def flag(self, name: str) -> str:
        flags = self._http.get("/api/v1/status/flags").raise_for_status().json()["data"]
        return str(flags.get(name, "?"))


class Alertmanagers:
    """Silences on both replicas (each gossips its own to the other)."""

    def __init__(self, urls: Sequence[str]) -> None:
        self._urls = list(urls)

    @contextmanager
    def silenced(self, why: str) -> Iterator[None]:
        now = datetime.now(UTC)
        body = {
            "matchers": [{"name": "alertname", "value": ".+", "isRegex": True, "isEqual": True}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=30)).isoformat(),
            "createdBy": "bench/time_to_recover.py",
            "comment": why,
        }
        made = []
        try:
            for url in self._urls:
                answer = httpx.post(f"{url}/api/v2/silences", json=body, timeout=10)
                made.append((url, answer.raise_for_status().json()["silenceID"]))
            yield
        finally:
            for url, silence in made:
                httpx.delete(f"{url}/api/v2/silence/{silence}", timeout=10)


class Prefect(PrefectApi):
    def run_times(self, flow_run_id: str) -> tuple[float, float | None, str]:
        """The run's creation, its start (None before it runs) and its state now."""
        run = self.call("GET", f"/flow_runs/{flow_run_id}")
        start = _epoch(run["start_time"]) if run.get("start_time") else None
        return _epoch(run["created"]), start, str(run.get("state_type"))

    def approve_paused(self) -> list[str]:
        """Resume every paused run with an approval, as the operator would; their ids."""
        flow_runs = {"state": {"type": {"any_": ["PAUSED"]}}}
        runs = self.call("POST", "/flow_runs/filter", json={"flow_runs": flow_runs})
        for run in runs:
            self.call("POST", f"/flow_runs/{run['id']}/resume", json={"run_input": APPROVAL})
        return [str(r["id"]) for r in runs]

    def paused_at(self, flow_run_id: str) -> float | None:
        """When the run first paused."""
        states = self.call("GET", "/flow_run_states/", params={"flow_run_id": flow_run_id})
        paused = [_epoch(s["timestamp"]) for s in states if s["type"] == "PAUSED"]
        return min(paused, default=None)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _at(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


@dataclass
class Records:
    """The incident store since the injection."""

    receipts: list[AlertReceipt]
    incidents: list[Incident]  # opened since
    incident: Incident | None  # the one the expected alert joined (after any merge)
    events: list[IncidentEvent]
    actions: list[IncidentAction]
    outbox: TriageOutbox | None  # the triage run the intake owes the incident
    first_change: float | None  # the first change any run sent since


def read_records(store_url: str, since: float, alerts: Sequence[str]) -> Records:
    after = datetime.fromtimestamp(since, UTC)
    with session_for(store_url, read_only=True) as s:
        receipts = list(
            s.exec(
                select(AlertReceipt)
                .where(col(AlertReceipt.received_at) >= after)
                .order_by(col(AlertReceipt.received_at))
            ).all()
        )
        opened = list(
            s.exec(
                select(Incident).where(col(Incident.opened_at) >= after).order_by(col(Incident.id))
            )
        )
        first = next((r for r in receipts if r.status == "firing" and r.alertname in alerts), None)
        incident = events = actions = outbox = None
        if first is not None:
            # Where its alert is now: triage may have merged its incident into another.
            row = s.exec(
                select(IncidentAlert)
                .where(IncidentAlert.fingerprint == first.fingerprint)
                .order_by(col(IncidentAlert.id).desc())
            ).first()
            if row is not None:
                incident = s.get(Incident, row.incident_id)
        if incident is not None:
            events = list(
                s.exec(
                    select(IncidentEvent)
                    .where(IncidentEvent.incident_id == incident.id)
                    .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
                )
            )
            actions = list(
                s.exec(
                    select(IncidentAction)
                    .where(IncidentAction.incident_id == incident.id)
                    .order_by(col(IncidentAction.started_at))
                )
            )
            outbox = s.exec(
                select(TriageOutbox)
                .where(TriageOutbox.incident_id == incident.id)
                .order_by(col(TriageOutbox.id).desc())
            ).first()
        unsent = (ActionStatus.PLANNED, ActionStatus.REFUSED)
        changes = s.exec(
            select(IncidentAction.started_at)
            .where(col(IncidentAction.started_at) >= after)
            .where(col(IncidentAction.dry_run).is_(False))
            .where(col(IncidentAction.status).not_in(unsent))
        ).all()
    first_change = min((c.timestamp() for c in changes), default=None)
    return Records(receipts, opened, incident, events or [], actions or [], outbox, first_change)


def spent_key(store_url: str, key: str) -> TriageOutbox | None:
    with session_for(store_url, read_only=True) as s:
        return s.exec(select(TriageOutbox).where(TriageOutbox.idempotency_key == key)).first()


def timeline(store_url: str, incident_id: int, t0: float) -> list[str]:
    """The incident's events, as seconds since the injection."""
    with session_for(store_url, read_only=True) as s:
        events = s.exec(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
        ).all()
    return [
        f"{e.at.timestamp() - t0:6.1f} s {e.kind}{' ' + e.status if e.status else ''}: "
        f"{e.summary[:140]}"
        for e in events
    ]


def transition_at(records: Records, status: IncidentStatus) -> float | None:
    for e in records.events:
        if e.kind == EventKind.TRANSITION and e.status == status:
            return _at(e.at)
    return None


def mitigation_at(records: Records) -> float | None:
    """The first change sent for real (its audit row is written just before it), else the
    `mitigating` transition."""
    unsent = (ActionStatus.PLANNED, ActionStatus.REFUSED)
    sent = [a for a in records.actions if not a.dry_run and a.status not in unsent]
    if sent:
        return _at(sent[0].started_at)
    return transition_at(records, IncidentStatus.MITIGATING)


# -- results -----------------------------------------------------------------------------------

STEPS = (
    ("series", "series"),
    ("firing", "firing"),
    ("notified", "notified"),
    ("triage", "triage"),
    ("mitigate", "mitigate"),
    ("recovered", "recovered"),
    ("verified", "verified"),
    ("resolved_notification", "res.notif"),
    ("resolved", "resolved"),
)


@dataclass
class Result:
    scenario: str
    branch: str
    alert: str = ""  # the expected alert that was notified first
    incident: int | None = None
    triage_chose: str | None = None  # the incident's scenario letter
    status: str = ""  # the incident's status when the bench stopped following it
    # seconds since the injection
    series: float | None = None
    firing: float | None = None
    notified: float | None = None
    triage: float | None = None
    mitigate: float | None = None
    recovered: float | None = None
    verified: float | None = None
    resolved_notification: float | None = None
    resolved: float | None = None
    approval_paused: float | None = None  # the run paused for a human
    approval_given: float | None = None  # the bench approved it
    triage_created: float | None = None  # the outbox created the triage run in Prefect
    # the direct baseline: seconds since its own injection
    direct_shows: float | None = None
    direct_recovered: float | None = None
    direct_command: float | None = None  # recovered minus the command's start
    direct_kubectl: float | None = None  # the kubectl process alone
    other_alerts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)  # the incident's, since the injection
    other_incidents: dict[int, list[str]] = field(default_factory=dict)


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


# -- the stack --------------------------------------------------------------------------------


class Up:
    """`remediate up` as a child in its own session; the lines it prints."""

    def __init__(self, state: Path, speed: float, echo: bool) -> None:
        self.state = state
        self.store_url = f"sqlite:///{state / 'store.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_"))}
        env.update(
            REMEDIATE_STORE__URL=self.store_url,
            REMEDIATE_INCIDENTS__REPORTS_DIR=str(state / "reports"),
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            **BENCH_ENV,
        )
        argv = [REMEDIATE, "up", "--no-sample", "--prefect-port", "0", "--intake-port", "0"]
        argv += ["--state-dir", str(state), "--speed", f"{speed:g}"]
        self.lines: list[str] = []
        self._echo = echo
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=state,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._echo:
                print(f"  [up] {line.rstrip()}", flush=True)

    def values(self, prefix: str, timeout: float, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                ln.split(": ", 1)[1] for ln in list(self.lines) if ln.startswith(prefix + ": ")
            ]
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        tail = "\n".join(self.lines[-30:])
        raise RuntimeError(f"`remediate up` never printed {prefix!r}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=10)


@dataclass
class Bench:
    up: Up
    kube: Kube
    prometheus: Prometheus
    alertmanagers: Alertmanagers
    prefect: Prefect
    timeout: float
    say: Callable[[str], None]
    background: set[str] = field(default_factory=set)  # alerts active before any injection
    parked: set[int] = field(default_factory=set)  # incidents left verified on purpose (D)

    def wait(self, what: str, ready: Callable[[], Any], timeout: float, poll: float = POLL) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = ready()
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {timeout:.0f} s")
            time.sleep(poll)

    def quiet(self) -> bool:
        """No alert pending or firing (but those active at rest) and every pod ready."""
        if any(name not in self.background for name, _ in self.prometheus.active()):
            return False
        return all(
            healthy(p)
            for ns in (NS, "alphaswarm-admin", "ingress-nginx")
            for p in self.kube.pods(ns)
            if is_active(p) or is_terminating(p)
        )

    def settle(self, result: Result, when: str) -> None:
        """Heal the sandbox, then wait for a quiet cluster and every incident opened during the
        scenario to end (bounded: a note says what was still going on)."""
        self.kube.heal()
        try:
            self.wait("quiet cluster", self.quiet, QUIET_SECONDS)
        except TimeoutError:
            still = sorted({f"{n} {s}" for n, s in self.prometheus.active()})
            result.notes.append(f"{when}: not quiet after {QUIET_SECONDS:.0f} s ({still})")
        try:
            self.wait("incidents ended", lambda: not self.open_incidents(), QUIET_SECONDS)
        except TimeoutError:
            still = [f"{i.id} {i.status}" for i in self.open_incidents()]
            result.notes.append(
                f"{when}: incidents still open after {QUIET_SECONDS:.0f} s: {still}"
            )

    def open_incidents(self) -> list[Incident]:
        with session_for(self.up.store_url, read_only=True) as s:
            return list(
                s.exec(
                    select(Incident)
                    .where(
                        col(Incident.status).not_in(
                            [IncidentStatus.RESOLVED, IncidentStatus.ESCALATED]
                        )
                    )
                    .where(col(Incident.id).not_in(self.parked))
                )
            )

    # -- the loop -------------------------------------------------------------------------------

    def through_the_loop(self, scenario: Scenario, result: Result) -> None:
        t0 = time.time()
        answer = self.kube.inject(scenario.name)
        if answer.status_code != 201:
            raise RuntimeError(f"inject {scenario.name}: {answer.status_code} {answer.text}")
        deadline = t0 + self.timeout
        paused: set[str] = set()
        approved_at: float | None = None
        next_approval = 0.0
        recovered = Steady()
        ended_at: float | None = None
        seen_status = ""
        while True:
            now = time.time()
            records = read_records(self.up.store_url, t0, scenario.alerts)
            incident = records.incident
            if incident is not None and incident.status != seen_status:
                seen_status = incident.status
                self.say(f"    {now - t0:6.1f} s  incident {incident.id} {incident.status}")
            # Checked once a change was sent (by whichever incident's run: F's Redis may be
            # fixed by the run of its workers' alert), so a crash loop's pause is not taken for
            # a recovery.
            if recovered.at is None and records.first_change is not None:
                recovered.see(scenario.recovered(self.kube), now)
            if now >= next_approval:
                resumed = self.prefect.approve_paused()
                if resumed and approved_at is None:
                    approved_at = time.time()
                paused.update(resumed)
                next_approval = now + 1.0
            if incident is not None and ended_at is None:
                ended = incident.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED)
                parked = scenario.stays_verified and incident.status == IncidentStatus.VERIFIED
                ended_at = now if ended or parked else None
            # Done once it ended and the sandbox shows the fix (or 10 s later: it never did).
            if ended_at is not None and (
                recovered.at is not None or now > ended_at + STEADY_SECONDS + 10
            ):
                break
            if now > deadline:
                result.notes.append(f"loop: stopped following after {self.timeout:.0f} s")
                break
            time.sleep(POLL)

        def since(at: float | None) -> float | None:
            return None if at is None else at - t0

        incident = records.incident
        first = self.prometheus.first_samples(t0)
        notified = [
            r for r in records.receipts if r.status == "firing" and r.alertname in scenario.alerts
        ]
        result.alert = notified[0].alertname if notified else ""
        expected = [result.alert] if result.alert else list(scenario.alerts)
        pending = [first[(a, "pending")] for a in expected if (a, "pending") in first]
        firing = [first[(a, "firing")] for a in expected if (a, "firing") in first]
        result.series = since(min(pending, default=None))
        result.firing = since(min(firing, default=None))
        result.notified = since(_at(notified[0].received_at)) if notified else None
        result.recovered = since(recovered.at)
        others = sorted(
            {
                f"{name} {state}"
                for (name, state) in first
                if name not in expected and state == "firing"
            }
        )
        result.other_alerts = others
        if not firing:
            result.notes.append(f"loop: {'/'.join(expected)} never fired")
        if incident is None or incident.id is None:
            result.notes.append("loop: no incident joined by the expected alert")
            return
        result.incident, result.triage_chose, result.status = (
            incident.id,
            incident.scenario,
            str(incident.status),
        )
        run_id = (records.outbox.flow_run_id if records.outbox else None) or (
            incident.triage_flow_run_id
        )
        if run_id:
            created, started, state = self.prefect.run_times(run_id)
            result.triage_created, result.triage = since(created), since(started)
            if started is None:
                result.notes.append(f"loop: the triage run {run_id} never started ({state})")
        elif records.outbox is not None:
            o = records.outbox
            result.notes.append(
                f"loop: the triage run was never created: outbox row {o.id}, {o.attempts} "
                f"attempt(s), last error {o.last_error[:160]!r}"
            )
        else:
            result.notes.append(f"loop: no triage run owed to incident {incident.id}")
            spent = spent_key(self.up.store_url, f"triage-incident-{incident.id}")
            if spent is not None:
                result.notes.append(
                    f"loop: its idempotency key triage-incident-{incident.id} was spent before: "
                    f"outbox row {spent.id} of {spent.created_at:%H:%M:%S}, whose incident "
                    f"is {spent.incident_id or 'gone (merged into another, deleted)'}: the "
                    "store gave this incident a deleted incident's id"
                )
        result.mitigate = since(mitigation_at(records))
        result.verified = since(transition_at(records, IncidentStatus.VERIFIED))
        result.resolved = since(transition_at(records, IncidentStatus.RESOLVED))
        mine = {r.fingerprint for r in records.receipts if r.incident_id == incident.id}
        mine |= {r.fingerprint for r in notified}
        # The last of its alerts' resolved notifications before it resolved: that one did it.
        resolved_receipts = [
            r.received_at.timestamp()
            for r in records.receipts
            if r.status == "resolved" and r.fingerprint in mine
        ]
        if resolved_receipts:
            cut = transition_at(records, IncidentStatus.RESOLVED) or math.inf
            before = [t for t in resolved_receipts if t <= cut]
            result.resolved_notification = since(max(before or resolved_receipts))
        if paused:
            stamps = [self.prefect.paused_at(r) for r in paused]
            result.approval_paused = since(min((t for t in stamps if t), default=None))
            result.approval_given = since(approved_at)
        elif scenario.approval:
            result.notes.append("loop: expected an approval pause, none seen")
        if scenario.stays_verified and incident.status == IncidentStatus.VERIFIED:
            self.parked.add(incident.id)  # not waited for: it stays verified while Auth0 is down
        if incident.status == IncidentStatus.ESCALATED:
            why = next(
                (
                    e.summary
                    for e in reversed(records.events)
                    if e.status == IncidentStatus.ESCALATED
                ),
                "",
            )
            result.notes.append(f"loop: incident {incident.id} escalated: {why[:160]}")
        result.timeline = timeline(self.up.store_url, incident.id, t0)
        for other in records.incidents:
            if other.id != incident.id and other.id is not None:
                result.notes.append(
                    f"loop: also incident {other.id} ({other.title}): {other.status}"
                )
                result.other_incidents[other.id] = timeline(self.up.store_url, other.id, t0)

    # -- the direct baseline ----------------------------------------------------------------------

    def directly(self, scenario: Scenario, result: Result) -> None:
        for argv in scenario.prepare:
            self.kube.kubectl(argv)
        if scenario.prepare:
            self.wait("prepared cluster", lambda: scenario.prepared(self.kube), QUIET_SECONDS)
            self.wait("quiet cluster", self.quiet, QUIET_SECONDS)
        with self.alertmanagers.silenced("time_to_recover: the direct baseline"):
            try:
                t0 = time.time()
                answer = self.kube.inject(scenario.name)
                if answer.status_code != 201:
                    result.notes.append(f"direct: could not inject again: {answer.text.strip()}")
                    return
                self.wait("symptom", lambda: scenario.showing(self.kube), SHOW_SECONDS)
                acted = time.time()
                result.direct_shows = acted - t0
                result.direct_kubectl = self.kube.kubectl(scenario.command)
                recovered = Steady()
                self.wait(
                    "recovery",
                    lambda: recovered.see(scenario.recovered(self.kube), time.time()),
                    DIRECT_SECONDS,
                    0.1,
                )
                assert recovered.at is not None
                result.direct_recovered = recovered.at - t0
                result.direct_command = recovered.at - acted
            finally:
                # Silenced until the alerts it raised are gone: none reaches the intake later.
                self.settle(result, "after the direct run")


def timing_lines(
    state: Path, prometheus: Prometheus, speed: float
) -> tuple[list[str], dict[str, Any]]:
    """The rehearsal's timing, read from the files `remediate up` generated."""
    base = state / "monitoring"
    prom = yaml.safe_load((base / "prometheus" / "prometheus.yml").read_text())["global"]
    rules = yaml.safe_load((base / "prometheus" / "rules.yaml").read_text())
    route = yaml.safe_load((base / "alertmanager" / "alertmanager.yml").read_text())["route"]
    child = route["routes"][0]
    resend = prometheus.flag("rules.alert.resend-delay")
    per_rule = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            ranges = sorted(set(re.findall(r"\[([0-9a-z]+)\]", rule["expr"])))
            per_rule[rule["alert"]] = {"for": rule.get("for", "0s"), "ranges": ranges}
    lines = [
        f"rehearsal speed {speed:g}x (production durations divided by it; "
        "remediate/monitoring/timing.py)",
        f"  Prometheus: scrape {prom['scrape_interval']}, evaluation "
        f"{prom['evaluation_interval']}, resend delay {resend}",
        f"  Alertmanager (x2): group_wait {child['group_wait']}, group_interval "
        f"{child['group_interval']}, repeat_interval {child['repeat_interval']}",
        "  rules (for:, ranges): "
        + "; ".join(
            f"{name} {v['for']}" + (f" [{', '.join(v['ranges'])}]" if v["ranges"] else "")
            for name, v in per_rule.items()
        ),
    ]
    figures = {
        "speed": speed,
        "scrape_interval": prom["scrape_interval"],
        "evaluation_interval": prom["evaluation_interval"],
        "resend_delay": resend,
        "group_wait": child["group_wait"],
        "group_interval": child["group_interval"],
        "repeat_interval": child["repeat_interval"],
        "rules": per_rule,
    }
    return lines, figures


def table(results: list[Result]) -> list[str]:
    head = f"{'scenario':<22} {'alert':<26}" + "".join(f"{label:>10}" for _, label in STEPS)
    head += f"  | {'shows':>7}{'recov.':>8}{'cmd':>7}{'kubectl':>9}"
    lines = [
        "seconds since the injection; `direct`: the same runbook step with kubectl the moment "
        "the symptom shows",
        f"{'':<49}{'-- through the loop (Prometheus, Alertmanager, intake, Prefect) ':-<90}"
        f"  | {'-- direct ':-<31}",
        head,
    ]
    for r in results:
        row = f"{r.branch + ' ' + r.scenario:<22} {r.alert or '(none)':<26}"
        row += "".join(f"{fmt(getattr(r, key)):>10}" for key, _ in STEPS)
        row += (
            f"  | {fmt(r.direct_shows):>7}{fmt(r.direct_recovered):>8}{fmt(r.direct_command):>7}"
            f"{fmt(r.direct_kubectl):>9}"
        )
        lines.append(row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--speed", type=float, default=60.0, help="the rehearsal speed factor")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list, in order (default: {','.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--timeout", type=float, default=180.0, help="per scenario, the loop's run")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="crashloop-single runs through the loop first, not counted: the first run after "
        "the start pays for what starts once",
    )
    parser.add_argument(
        "--logs", type=Path, help="keep the stack's logs and the incident store in this folder"
    )
    parser.add_argument("--verbose", action="store_true", help="print the stack's progress")
    args = parser.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    scenarios = [SCENARIOS[n] for n in names]

    budget = START_SECONDS + args.warmup * (args.timeout + QUIET_SECONDS)
    budget += len(scenarios) * (args.timeout + 4 * QUIET_SECONDS + SHOW_SECONDS + DIRECT_SECONDS)

    def out_of_time(*_: Any) -> None:
        raise BenchTimeout(f"the bench ran out of its {budget:.0f} s")

    # A SIGTERM unwinds like Ctrl-C, and so does the bench's own deadline: the stack stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(budget))
    say: Callable[[str], None] = print
    results: list[Result] = []
    figures: dict[str, Any] = {}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="time-to-recover-") as tmp:
        state = Path(tmp)
        up = Up(state, args.speed, args.verbose)
        closers: list[Callable[[], None]] = []
        try:
            urls = {key: up.values(key, START_SECONDS)[0] for key in ("prefect-ui", "kubeconfig")}
            prometheus_url = up.values("prometheus", 30)[0]
            alertmanager_urls = up.values("alertmanager", 30, count=2)
            bench = Bench(
                up=up,
                kube=Kube(Path(urls["kubeconfig"])),
                prometheus=Prometheus(prometheus_url),
                alertmanagers=Alertmanagers(alertmanager_urls),
                prefect=Prefect(urls["prefect-ui"] + "/api"),
                timeout=args.timeout,
                say=say if args.verbose else (lambda _: None),
            )
            closers += [bench.kube.close, bench.prometheus.close, bench.prefect.close]
            bench.prefect.pause(SWEEP)
            lines, figures = timing_lines(state, bench.prometheus, args.speed)
            for line in lines:
                say(line)
            # Alerts a healthy sandbox raises at rest are not the scenarios'.
            time.sleep(2)
            bench.background = {name for name, _ in bench.prometheus.active()}
            if bench.background:
                say(f"  active before any injection (ignored): {sorted(bench.background)}")
            say(
                f"stack up in {time.monotonic() - began:.0f} s; budget {budget:.0f} s "
                f"(per scenario {args.timeout:.0f} s for the loop)"
            )
            for i in range(args.warmup):
                warm = Result("crashloop-single", "A")
                try:
                    bench.settle(warm, "before")
                    bench.through_the_loop(SCENARIOS["crashloop-single"], warm)
                except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                    warm.notes.append(f"loop: {type(exc).__name__}: {exc}")
                say(
                    f"warm-up {i + 1} (crashloop-single, not counted): notified "
                    f"{fmt(warm.notified)} s, triage started {fmt(warm.triage)} s, resolved "
                    f"{fmt(warm.resolved)} s {'; '.join(warm.notes)}"
                )
            for scenario in scenarios:
                result = Result(scenario.name, scenario.branch)
                results.append(result)
                say(f"{scenario.branch} {scenario.name}: through the loop ...")
                try:
                    bench.settle(result, "before")
                    bench.through_the_loop(scenario, result)
                except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                    result.notes.append(f"loop: {type(exc).__name__}: {exc}")
                try:
                    bench.settle(result, "after the loop")
                    bench.directly(scenario, result)
                except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                    result.notes.append(f"direct: {type(exc).__name__}: {exc}")
                say(
                    f"  incident {result.incident} ({result.status or '-'}): notified "
                    f"{fmt(result.notified)} s, recovered {fmt(result.recovered)} s, resolved "
                    f"{fmt(result.resolved)} s; direct recovered {fmt(result.direct_recovered)} s"
                )
        except BenchTimeout as exc:
            say(f"stopped: {exc}")
        finally:
            signal.alarm(0)
            for close in closers:
                close()
            up.stop()
            if args.logs is not None:
                shutil.copytree(state / "stack" / "logs", args.logs, dirs_exist_ok=True)
                for name in ("store.db", "store.db-wal", "store.db-shm"):
                    if (state / name).exists():
                        shutil.copy2(state / name, args.logs / name)
        if not results:
            raise SystemExit("no scenario ran")

    say("")
    for line in table(results):
        say(line)
    say("")
    for r in results:
        s = SCENARIOS[r.scenario]
        say(
            f"{r.branch} {r.scenario}: incident {r.incident}, triage chose "
            f"{r.triage_chose}, {r.status}"
        )
        say(f"    runbook: {s.mitigation}")
        say(f"    recovered when: {s.recovered_text}; direct: kubectl {' '.join(s.command)}")
        if r.approval_paused is not None:
            say(
                f"    approval wait inside the figures: the run paused at {fmt(r.approval_paused)} "
                f"s, the bench approved at {fmt(r.approval_given)} s, the change was sent at "
                f"{fmt(r.mitigate)} s (a paused run looks for its answer every 10 s)"
            )
        if s.stays_verified:
            say(
                "    no resolved figures: the incident stays verified while Auth0 is down (its "
                "probe alert fires on), until its scheduled revert; the bench stops following it "
                "once it is verified"
            )
        if r.other_alerts:
            say(f"    other alerts firing: {', '.join(r.other_alerts)}")
        for note in r.notes:
            say(f"    {note}")
        if args.verbose:
            for line in r.timeline:
                say(f"      {line}")
            for other, lines in r.other_incidents.items():
                say(f"    incident {other}:")
                for line in lines:
                    say(f"      {line}")
    say(
        "bench settings: health sweep paused; "
        + ", ".join(f"{k}={v}" for k, v in BENCH_ENV.items())
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "command": sys.argv,
                    "timing": figures,
                    "settings": BENCH_ENV,
                    "scenarios": [asdict(r) for r in results],
                },
                indent=2,
            )
            + "\n"
        )
        say(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
