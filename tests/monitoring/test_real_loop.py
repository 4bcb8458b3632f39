"""Every runbook scenario closes through the real monitoring loop, with no hand-made payload:
`remediate up` on the sandbox with Debian's Prometheus and two clustered Alertmanagers (rules
from infra/prometheus at rehearsal speed 60: `for: 15m` is 15 s). For each scenario the incident
is injected, Prometheus fires, Alertmanager notifies the intake, one triage run fixes it, the
alert resolves and the incident ends resolved. A relapse after resolution reopens the incident
and re-triages it (A's restart cap counts across it); Alertmanager frozen for a while, then
back, loses nothing.

The binaries are required, never skipped: `make system-deps` and .ci/run install them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlmodel import col, select

from sandbox.api_sandbox import INCIDENTS_PATH
from store.engine import dispose_all, session_for
from store.models import (
    ActionStatus,
    AlertReceipt,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
)
from store.queries import IncidentRecord, load_incident
from store.types import utcnow
from tests.stack.up import RunningStack, api_call, flow_runs, remediate_up

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("monitoring")]

# The rehearsal speed of `remediate up` itself. Faster, the rules' windows shrink below the
# sandbox's crash-loop cycle ([5m] at 300x is 1 s): KubePodCrashLooping resolves and fires again
# between two crashes, and every flap is, rightly, a relapse.
SPEED = "60"
RELAPSE_AFTER_SECONDS = "12"
# A crash loop on a Deployment within this long after its incident resolved is that incident's
# relapse; tests that stage a new incident on the same object wait it out first.
RELAPSE_WINDOW_SECONDS = 60.0
INCIDENT_SECONDS = 150.0
APPROVAL = {"approved": True, "approver": "loop-test", "comment": ""}
ENDED = (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state = tmp_path_factory.mktemp("loop")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SANDBOX_RELAPSE_AFTER_SECONDS", RELAPSE_AFTER_SECONDS)
        patch.setenv("REMEDIATE_AUTH__REVERT_CHECK_AFTER_SECONDS", "3")
        patch.setenv("REMEDIATE_INCIDENTS__RELAPSE_WINDOW_SECONDS", str(RELAPSE_WINDOW_SECONDS))
        # Several scenarios restart alphaswarm-core within minutes, which the cooldown (300 s)
        # and the per-target breaker (3 an hour) rightly refuse in production.
        patch.setenv("REMEDIATE_SAFETY__COOLDOWN_SECONDS", "0")
        patch.setenv("REMEDIATE_SAFETY__MAX_CHANGES_PER_TARGET", "20")
        with remediate_up(state, "--no-sample", "--speed", SPEED) as running:
            running.wait_for_line("alertmanager: ", 60)
            yield running
    dispose_all()


def sandbox_url(stack: RunningStack) -> str:
    config = yaml.safe_load(stack.kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def urls(stack: RunningStack, key: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in stack.lines if line.startswith(f"{key}: ")]


def store_url(stack: RunningStack) -> str:
    return stack.env["REMEDIATE_STORE__URL"]


def inject(stack: RunningStack, name: str) -> datetime:
    at = utcnow()
    answer = httpx.post(f"{sandbox_url(stack)}{INCIDENTS_PATH}/{name}", timeout=10)
    assert answer.status_code == 201, answer.text
    return at


def firing_in_prometheus(stack: RunningStack) -> set[str]:
    (prometheus,) = urls(stack, "prometheus")
    answer = httpx.get(
        f"{prometheus}/api/v1/query", params={"query": 'ALERTS{alertstate="firing"}'}, timeout=5
    ).json()
    return {r["metric"]["alertname"] for r in answer["data"]["result"]}


def quiet(stack: RunningStack, target: str = "") -> None:
    """Heal what the last scenario left behind (its backlog producer, an outage the runbook only
    bypasses), then wait until nothing fires and no incident is open: the next scenario starts
    from a healthy cluster; with `target`, no incident about it resolved within the relapse
    window either (a new one would be its relapse)."""
    httpx.delete(f"{sandbox_url(stack)}{INCIDENTS_PATH}", timeout=10)
    deadline = time.monotonic() + 60 + RELAPSE_WINDOW_SECONDS
    while time.monotonic() < deadline:
        with session_for(store_url(stack), read_only=True) as session:
            open_ones = session.exec(  # an escalated one waits for a human, not for us
                select(Incident.id)
                .where(col(Incident.open_key).is_not(None))
                .where(col(Incident.status) != IncidentStatus.ESCALATED)
            ).all()
            recent = session.exec(
                select(Incident.id)
                .where(col(Incident.target) == target)
                .where(
                    col(Incident.resolved_at)
                    >= utcnow() - timedelta(seconds=RELAPSE_WINDOW_SECONDS + 1)
                )
            ).all()
        if not firing_in_prometheus(stack) and not open_ones and not recent:
            return
        time.sleep(0.5)
    raise AssertionError(f"still firing: {firing_in_prometheus(stack)}, open: {open_ones}")


def approve_paused(stack: RunningStack) -> None:
    for run in flow_runs(stack.api_url, state={"type": {"any_": ["PAUSED"]}}):
        body = {"run_input": APPROVAL}
        api_call(stack.api_url, "POST", f"/flow_runs/{run['id']}/resume", json=body)


def incident_since(
    stack: RunningStack, since: datetime, branch: str | None = None
) -> Incident | None:
    """The first incident opened or reopened since `since` (triage decided `branch`, if given):
    a scenario's knock-on alerts may open others, which triage merges or escalates."""
    with session_for(store_url(stack), read_only=True) as session:
        query = (
            select(Incident)
            .join(IncidentEvent, col(IncidentEvent.incident_id) == col(Incident.id))
            .where(col(IncidentEvent.status) == IncidentStatus.OPEN)
            .where(col(IncidentEvent.at) >= since)
            .order_by(col(IncidentEvent.at))
        )
        if branch is not None:
            query = query.where(col(Incident.scenario) == branch)
        return session.exec(query).first()


def until_ended(
    stack: RunningStack, since: datetime, branch: str | None = None, *, then: Any = None
) -> IncidentRecord:
    """The incident (re)opened since `since`, once it resolved or escalated (approving any run
    that pauses for a human; `then(incident)` is called on each look, e.g. to heal an outage the
    runbook only bypasses)."""
    deadline = time.monotonic() + INCIDENT_SECONDS
    incident = None
    while time.monotonic() < deadline:
        approve_paused(stack)
        incident = incident_since(stack, since, branch)
        if incident is not None and then is not None:
            then(incident)
        if incident is not None and incident.status in ENDED:
            with session_for(store_url(stack), read_only=True) as session:
                return load_incident(session, incident_id=incident.id or 0)
        time.sleep(0.5)
    raise AssertionError(f"no incident ended within {INCIDENT_SECONDS} s: {incident}")


def receipts(stack: RunningStack, since: datetime) -> list[AlertReceipt]:
    with session_for(store_url(stack), read_only=True) as session:
        return list(
            session.exec(select(AlertReceipt).where(col(AlertReceipt.received_at) >= since)).all()
        )


def triage_runs(stack: RunningStack, incident_id: int) -> list[dict[str, Any]]:
    runs = flow_runs(stack.api_url, tags={"all_": [f"incident-{incident_id}"]})
    return [r for r in runs if r["name"].startswith("triage") or "triage" in r["tags"]]


def timeline(record: IncidentRecord) -> list[str]:
    return [f"{e.kind}:{e.status or ''}:{e.summary}" for e in record.events]


# (sandbox incident, the runbook branch triage must choose, the alerts of which Prometheus raises
# first: the one whose `for:` ends first opens the incident, and a fix may come before the
# others fire); A on the control plane, B on alphaswarm-core, the relapse test on core after B.
SCENARIOS = [
    # /manage answers 503 while the control plane has no ready pod: ingress-nginx's 5xx rate
    # (for: 1m) fires before the crash loop (for: 15m)
    ("cp-crashloop", "A", ("KubePodCrashLooping", "NginxHighHttp5xxErrorRate")),
    ("crashloop-several", "B", ("KubePodCrashLooping",)),
    ("queue-backlog", "C", ("CeleryHighQueueLength",)),
    ("ingress-503", "E", ("NginxHighHttp5xxErrorRate", "BlackboxProbeFailed")),
    ("redis-down", "F", ("RedisDown", "KubeStatefulSetReplicasMismatch")),
    ("jwks-503", "D", ("BlackboxProbeFailed",)),
]


@pytest.mark.parametrize(("name", "branch", "alertnames"), SCENARIOS)
def test_each_scenario_closes_through_prometheus_and_alertmanager(
    loop: RunningStack, name: str, branch: str, alertnames: tuple[str, ...]
) -> None:
    quiet(loop, "alphaswarm-core")
    since = inject(loop, name)
    healed: list[bool] = []

    def heal_the_outage(incident: Incident) -> None:
        """D bypasses an Auth0 outage; the outage itself ends when Auth0 is back."""
        if branch == "D" and not healed and incident.status == IncidentStatus.VERIFIED:
            httpx.delete(f"{sandbox_url(loop)}{INCIDENTS_PATH}", timeout=10)
            healed.append(True)

    record = until_ended(loop, since, branch, then=heal_the_outage)
    lines = timeline(record)
    assert record.incident.status == IncidentStatus.RESOLVED, "\n".join(lines)
    assert record.incident.scenario == branch, record.incident.root_cause
    fired = {a.alertname for a in record.alerts}
    assert fired & set(alertnames), fired
    assert all(a.status == "resolved" for a in record.alerts)
    # Alertmanager's notifications, never a hand-made payload: the receipts name its receiver.
    got = receipts(loop, since)
    assert {r.receiver for r in got} == {"alphaswarm-remediate"}
    for alertname in fired:
        assert {"firing", "resolved"} <= {r.status for r in got if r.alertname == alertname}
    applied = [a for a in record.actions if a.status is ActionStatus.APPLIED and not a.dry_run]
    if branch == "D":  # the bypass, then its scheduled revert once Auth0 is back
        flip, revert = applied
        assert "permissive" in flip.summary and "enforce" in revert.summary, lines
    else:  # one triage run made the one fix
        assert len(applied) == 1, lines
    resolved_at = max(e.at for e in record.events if e.status == IncidentStatus.RESOLVED)
    last_alert = max(a.ends_at or a.last_received_at for a in record.alerts)
    assert resolved_at >= last_alert or any("resolved (Alertmanager)" in x for x in lines)
    if branch != "D":  # D's hard-rule bypass resolves through its P1 revert instead
        assert any("the fix held" in x for x in lines), "\n".join(lines)


def test_a_relapse_after_resolution_reopens_and_re_triages_it(loop: RunningStack) -> None:
    quiet(loop, "alphaswarm-core")
    since = inject(loop, "crashloop-single:relapse")
    deadline = time.monotonic() + INCIDENT_SECONDS
    record: IncidentRecord | None = None
    while time.monotonic() < deadline:
        incident = incident_since(loop, since, "A")
        if incident is not None and incident.relapses >= 1 and incident.status in ENDED:
            with session_for(store_url(loop), read_only=True) as session:
                record = load_incident(session, incident_id=incident.id or 0)
            break
        time.sleep(0.5)
    assert record is not None, f"no relapse ended: {incident_since(loop, since)}"
    lines = timeline(record)
    kinds = [e.kind for e in record.events]
    first_resolved = next(
        i for i, e in enumerate(record.events) if e.status == IncidentStatus.RESOLVED
    )
    assert kinds.index(EventKind.RELAPSE) > first_resolved, "\n".join(lines)
    relapse = next(e for e in record.events if e.kind is EventKind.RELAPSE)
    assert "the earlier fix: " in relapse.summary and "restart" in relapse.summary
    # One triage run for the incident and one for its relapse. A's cap (two restarts for an
    # incident, then escalate) counts across the relapse: the second run was told of the first
    # restart; its restart heals the relapse for good, and the alert's resolution resolves it.
    assert len(triage_runs(loop, record.id)) == 2
    assert record.incident.status == IncidentStatus.RESOLVED, "\n".join(lines)
    restarts = [a for a in record.actions if a.status is ActionStatus.APPLIED and not a.dry_run]
    assert len(restarts) == 2, "\n".join(lines)
    told = sorted(
        run["parameters"]["restarts_already_made"]
        for run in flow_runs(loop.api_url, tags={"all_": [f"incident-{record.id}"]})
        if "restarts_already_made" in run["parameters"]
    )
    assert told == [0, 1], told


def alertmanager_pids(stack: RunningStack) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"prometheus-alertmanager --config.file={stack.state}"],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in found.stdout.split()]


def test_alertmanager_down_for_a_while_then_back_loses_nothing(loop: RunningStack) -> None:
    quiet(loop, "alphaswarm-core")
    pids = alertmanager_pids(loop)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        since = inject(loop, "crashloop-single")
        deadline = time.monotonic() + 60
        while "KubePodCrashLooping" not in firing_in_prometheus(loop):
            assert time.monotonic() < deadline, "Prometheus never fired"
            time.sleep(0.3)
        time.sleep(3)  # Prometheus tries to notify and fails meanwhile
        assert incident_since(loop, since) is None  # nothing reached the intake
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    record = until_ended(loop, since)
    assert record.incident.status == IncidentStatus.RESOLVED, "\n".join(timeline(record))
    assert "KubePodCrashLooping" in {a.alertname for a in record.alerts}
