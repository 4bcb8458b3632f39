"""Triage's record of an incident, step by step, in the incident store.

    record_evidence   the alerts arrive: open an incident, or join the open one they belong to;
                      resolved alerts resolve the incident once all of its alerts have
    record_triage     the decision: the root cause, the incident keyed by its target (merging a
                      duplicate), triaged or escalated, and the regression-test follow-up
    record_mitigating a scenario flow is about to change the cluster
    record_outcome    what the scenario did: verified, escalated, or still only planned; its
                      follow-ups (D's P1 revert)
    record_hold       the fix held for the hold period (resolved once its alerts have, too), or
                      the incident came back

Each step is a Prefect task, so the run page shows it, and returns an `IncidentRef`: the
incident's id and status as the store now has them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar
from uuid import UUID

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from store import actions, follow_ups, incidents, lifecycle, queries
from store.engine import session_for
from store.models import EventKind, Incident, IncidentAlert, IncidentEvent, IncidentStatus
from store.queries import IncidentRecord
from tasks.changes.models import ActionKind, Target
from tasks.connection import settings as current_settings
from tasks.models.alerts import Alert, AlertBatch, alert_target
from tasks.models.diagnosis import Scenario, TriageDecision
from tasks.models.outcome import FollowUp, Outcome, OutcomeStatus
from tasks.run_context import current_flow_run, incident_tag
from tasks.settings import environment_name

REGRESSION_TEST = "regression-test"
ALERTS_RESOLVED = "every alert of the incident resolved (Alertmanager)"
REVERT = "revert"


class IncidentRef(BaseModel):
    """The incident a run works for, as the store has it after the step."""

    model_config = ConfigDict(frozen=True)

    id: int
    status: IncidentStatus
    mitigating_run: str | None = None  # the flow run mitigating it, while it is mitigating

    @property
    def tag(self) -> str:
        return incident_tag(self.id)


def store_url() -> str:
    return current_settings().store.url.get_secret_value()


P = ParamSpec("P")
R = TypeVar("R")


def _store_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A step that writes the store: never cached, not retried (a failed write is reported)."""
    decorator: Callable[[Callable[P, R]], Task[P, R]] = task(name=name, cache_policy=NO_CACHE)
    return decorator


def _ref(session: Session, incident_id: int) -> IncidentRef:
    incident = incidents.get_incident(session, incident_id=incident_id)
    status = IncidentStatus(incident.status)
    mitigating = None
    if status is IncidentStatus.MITIGATING:
        mitigating = session.exec(
            select(IncidentEvent.flow_run_id)
            .where(IncidentEvent.incident_id == incident_id)
            .where(IncidentEvent.status == IncidentStatus.MITIGATING)
            .order_by(col(IncidentEvent.at).desc(), col(IncidentEvent.id).desc())
        ).first()
    return IncidentRef(id=incident_id, status=status, mitigating_run=mitigating)


# -- what an alert or a decision is about --------------------------------------------------------


def alert_evidence(alert: Alert, group_key: str) -> incidents.AlertEvidence:
    ends = alert.ends_at if alert.ends_at is not None and alert.ends_at.year > 1 else None
    return incidents.AlertEvidence(
        fingerprint=alert.fingerprint,
        alertname=alert.name,
        status=alert.status.value,
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.starts_at,
        ends_at=ends,
        generator_url=alert.generator_url,
        group_key=group_key,
    )


# A Deployment's pod is named <deployment>-<pod-template-hash>-<suffix>, both parts drawn from
# the alphabet Kubernetes' rand.SafeEncodeString uses (no vowels, no 0, 1, 3).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
DEPLOYMENT_POD = re.compile(rf"^(?P<deployment>.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")


def alert_target_key(alerts: Sequence[Alert]) -> str:
    """Where the alerts point before triage has looked: the first one's object, else its name.
    A pod that is named like a Deployment's stands for its Deployment, so KubePodCrashLooping
    about each of its pods, and the health sweep's alert about the Deployment, are one incident
    with one triage run. Provisional: the decision re-keys the incident by the target it chose."""
    for alert in alerts:
        t = alert_target(alert)
        name = t.named
        if t.pod and name == t.pod and (owner := DEPLOYMENT_POD.match(t.pod)):
            name = owner["deployment"]
        if name:
            return f"alert:{t.namespace or '-'}/{name}"
    return f"alert:{alerts[0].name or alerts[0].fingerprint}" if alerts else "alert:-"


def decided_target_key(decision: TriageDecision) -> str | None:
    """`A:alphaswarm/alphaswarm-core`: the scenario and the object it acts on. Two alerts about
    one target and one problem are one incident; another problem on the same target is not."""
    if decision.scenario is None:
        return None
    return f"{decision.scenario.value}:{decision.namespace or '-'}/{decision.target or '-'}"


def decided_title(decision: TriageDecision) -> str:
    if decision.scenario is None:
        return f"Unclassified: {decision.reason}"[:200]
    where = f"{decision.namespace}/{decision.target}" if decision.target else decision.namespace
    return f"Runbook {decision.scenario.value} ({decision.scenario.runbook_title})" + (
        f" on {where}" if where else ""
    )


def alert_title(alerts: Sequence[Alert]) -> str:
    first = alerts[0]
    summary = first.annotations.get("summary") or first.name or first.fingerprint
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return f"{summary}{more}"[:200]


# -- the steps -----------------------------------------------------------------------------------


@_store_task("record-evidence")
def record_evidence(batch: AlertBatch) -> IncidentRef | None:
    """Open the incident the alerts are, or join the open one. A payload of only resolved alerts
    opens nothing: it resolves the incident holding them once all of its alerts have resolved."""
    flow_run_id, _ = current_flow_run()
    evidence = tuple(alert_evidence(a, batch.group_key) for a in batch.alerts)
    firing = [a for a in batch.alerts if a.firing]
    settings = current_settings()  # read before the write lock is taken
    environment = environment_name(settings.environment)
    relapse_window = settings.incidents.relapse_window
    with session_for(store_url()) as session:
        if not firing:
            found = incidents.record_resolved(
                session, alerts=evidence, summary=ALERTS_RESOLVED, flow_run_id=flow_run_id
            )
            return None if found is None or found.id is None else _ref(session, found.id)
        incident, _ = incidents.open_or_join(
            session,
            evidence=incidents.Evidence(
                target_key=alert_target_key(firing),
                title=alert_title(firing),
                alerts=evidence,
                trigger="alertmanager",
                environment=environment,
                flow_run_id=flow_run_id,
                relapse_window=relapse_window,
            ),
        )
        assert incident.id is not None
        return _ref(session, incident.id)


@_store_task("record-triage")
def record_triage(
    ref: IncidentRef | None, decision: TriageDecision, *, dry_run: bool
) -> IncidentRef | None:
    """Keep the decision. A sweep (no alert) opens an incident only when the probes found one.

    An incident already being mitigated, or verified and holding, keeps its status when its
    alert comes again (Alertmanager lags behind the fix): the new decision is a timeline line,
    and whether to act again is the caller's call (`probe_flow_run_active`)."""
    flow_run_id, _ = current_flow_run()
    if ref is None and decision.scenario is None and not decision.escalate:
        return None
    key = decided_target_key(decision)
    settings = current_settings()
    with session_for(store_url()) as session:
        if ref is None:
            opened, _ = incidents.open_or_join(
                session,
                evidence=incidents.Evidence(
                    target_key=key or f"sweep:{decision.reason[:80]}",
                    title=decided_title(decision),
                    trigger="sweep",
                    environment=environment_name(settings.environment),
                    flow_run_id=flow_run_id,
                    relapse_window=settings.incidents.relapse_window,
                ),
            )
            assert opened.id is not None
            ref = IncidentRef(id=opened.id, status=IncidentStatus(opened.status))
        incident = incidents.record_decision(
            session,
            incident_id=ref.id,
            decision=incidents.DecisionEvidence(
                scenario=decision.scenario.value if decision.scenario else None,
                reason=decision.reason,
                escalate=decision.escalate,
                dry_run=dry_run,
                namespace=decision.namespace,
                target=decision.target,
                evidence=decision.evidence,
                flow_run_id=flow_run_id,
            ),
            target_key=key,
            title=decided_title(decision) if decision.scenario is not None else None,
        )
        assert incident.id is not None
        branch = f"scenario {decision.scenario.value}" if decision.scenario else "no branch"
        lifecycle.triaged(
            session,
            incident_id=incident.id,
            escalate=decision.escalate,
            summary=f"{branch}: {decision.reason}" + (" (dry run)" if dry_run else ""),
            flow_run_id=flow_run_id,
        )
        _regression_follow_up(session, incident.id, decision)
        return _ref(session, incident.id)


def _regression_follow_up(session: Session, incident_id: int, decision: TriageDecision) -> None:
    """The runbook's last line: add a regression test for this class of incident."""
    alerts = alert_names(session, incident_id)
    signal = ", ".join(alerts) if alerts else "the health sweep's probes (no alert)"
    scenario = (
        f"scenario {decision.scenario.value} ({decision.scenario.runbook_title})"
        if decision.scenario
        else "no runbook branch (decide which one it belongs to)"
    )
    follow_ups.upsert_follow_up(
        session,
        incident_id=incident_id,
        spec=follow_ups.FollowUpSpec(
            key=f"{REGRESSION_TEST}-{incident_id}",
            kind=REGRESSION_TEST,
            priority="P2",
            title=f"add a regression test: {signal} must lead triage to {scenario}",
            condition=f"the test injects this incident and asserts triage picks {scenario} and "
            "its fix heals it",
            note=f"signal: {signal}; decided: {decision.reason}",
        ),
    )


def alert_names(session: Session, incident_id: int) -> list[str]:
    names = session.exec(
        select(IncidentAlert.alertname).where(IncidentAlert.incident_id == incident_id)
    ).all()
    return sorted({n for n in names if n})


def _step(ref: IncidentRef, to: IncidentStatus | None, summary: str) -> IncidentRef:
    """Move the incident to `to` (None: only a timeline note), as the current flow run."""
    flow_run_id, _ = current_flow_run()
    with session_for(store_url()) as session:
        if to is None:
            lifecycle.note(session, incident_id=ref.id, summary=summary, flow_run_id=flow_run_id)
        else:
            incidents.transition(
                session, incident_id=ref.id, to=to, summary=summary, flow_run_id=flow_run_id
            )
        return _ref(session, ref.id)


@_store_task("record-mitigating")
def record_mitigating(ref: IncidentRef, scenario: Scenario) -> IncidentRef:
    """Claim the incident's mitigation for this run, in one transaction with the check: two
    runs triaging one incident at once cannot both become its mitigating run. Already claimed
    by another run: nothing is written, and the ref names that run."""
    flow_run_id, _ = current_flow_run()
    with session_for(store_url()) as session:
        session.exec(select(Incident).where(col(Incident.id) == ref.id).with_for_update())
        now = _ref(session, ref.id)
        if now.mitigating_run is not None and now.mitigating_run != flow_run_id:
            return now
        incidents.transition(
            session,
            incident_id=ref.id,
            to=IncidentStatus.MITIGATING,
            summary=f"runbook {scenario.value} ({scenario.runbook_title}) applying its fix",
            flow_run_id=flow_run_id,
        )
        return _ref(session, ref.id)


def follow_up_spec(f: FollowUp) -> follow_ups.FollowUpSpec:
    return follow_ups.FollowUpSpec(
        key=f.key,
        kind=REVERT if f.flow else "manual",
        priority=f.priority.value,
        title=f.title,
        flow=f.flow,
        parameters=dict(f.parameters),
        condition=f.condition,
        scheduled_flow_run_id=f.scheduled_flow_run_id,
        scheduled_for=f.scheduled_for,
        note=f.note,
    )


@_store_task("record-outcome")
def record_outcome(ref: IncidentRef, outcome: Outcome, *, dry_run: bool) -> IncidentRef:
    """The scenario's result as the incident's next status; a dry run stays triaged."""
    flow_run_id, _ = current_flow_run()
    with session_for(store_url()) as session:
        actions.link_actions(
            session, change_keys=tuple(c.key for c in outcome.changes), incident_id=ref.id
        )
        for f in outcome.follow_ups:
            follow_ups.upsert_follow_up(session, incident_id=ref.id, spec=follow_up_spec(f))
        if not dry_run:
            _move_on(session, ref.id, outcome, flow_run_id)
        return _ref(session, ref.id)


def _move_on(session: Session, incident_id: int, outcome: Outcome, flow_run_id: str | None) -> None:
    if outcome.status is OutcomeStatus.MITIGATED:
        summary = "; ".join(f"{v.check}: {v.detail}" for v in outcome.verification)
    elif outcome.status is OutcomeStatus.NOTHING_TO_DO:
        summary = f"the scenario found nothing left to do: {outcome.message}"
    else:
        summary = f"{outcome.status.value}: {outcome.message}"
    lifecycle.settled(
        session,
        incident_id=incident_id,
        result=outcome.status.value,
        summary=summary,
        flow_run_id=flow_run_id,
    )


@_store_task("record-failure")
def record_failure(ref: IncidentRef, error: str, *, dry_run: bool) -> IncidentRef:
    """The scenario flow raised: a human must look (a dry run only notes that it could not plan)."""
    if dry_run:
        return _step(ref, None, f"the dry run could not plan: {error}")
    return _step(ref, IncidentStatus.ESCALATED, f"the scenario flow failed: {error}")


@_store_task("record-hold")
def record_hold(ref: IncidentRef, came_back: str | None, held_seconds: float) -> IncidentRef:
    """The end of the hold period (or a later look): escalated if the incident is back, else
    held, and resolved if its alerts have resolved too (`store.lifecycle.held`)."""
    with session_for(store_url()) as session:
        lifecycle.held(
            session,
            incident_id=ref.id,
            came_back=came_back,
            held_seconds=held_seconds,
            flow_run_id=current_flow_run()[0],
        )
        return _ref(session, ref.id)


@_store_task("record-alerts-outstanding")
def record_alerts_outstanding(ref: IncidentRef, waited_seconds: float) -> IncidentRef:
    """The fix held, yet the incident's alerts still fire after the wait: the rule and the
    probes disagree, so a human decides (never resolved on the probes' word alone)."""
    with session_for(store_url()) as session:
        still = ", ".join(incidents.firing_alerts(session, incident_id=ref.id))
    return _step(
        ref,
        IncidentStatus.ESCALATED,
        f"the fix held, but {still or 'its alerts'} still fire(s) {waited_seconds:g} s later "
        "while the probes see nothing wrong: a human decides",
    )


@task(name="wait-for-incident-change", cache_policy=NO_CACHE)
def wait_for_incident_change(ref: IncidentRef, seconds: float) -> IncidentRef:
    """The incident as the store has it once its status changes (a resolved notification
    resolved it), or after `seconds`; polled twice a second, read-only."""
    deadline = time.monotonic() + seconds
    while True:
        with session_for(store_url(), read_only=True) as session:
            now = _ref(session, ref.id)
        if now.status is not ref.status or time.monotonic() >= deadline:
            return now
        time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))


@_store_task("record-rescheduled-follow-up")
def record_rescheduled(follow_up: FollowUp, why: str) -> None:
    """A follow-up's flow run was scheduled again (D's revert while JWKS still fails): the store
    points at the new run, and the incident's timeline says why."""
    with session_for(store_url()) as session:
        row = follow_ups.upsert_follow_up(session, incident_id=None, spec=follow_up_spec(follow_up))
        if row.incident_id is not None:
            incidents.add_event(
                session,
                incident_id=row.incident_id,
                kind=EventKind.FOLLOW_UP,
                summary=f"{row.priority} follow-up rescheduled ({why}): {row.title}",
                flow_run_id=current_flow_run()[0],
            )


@_store_task("close-follow-up")
def close_follow_up(
    key: str, note: str, placeholder: FollowUp | None = None, resolve: str | None = None
) -> IncidentRef | None:
    """Close a follow-up from the run that did it; `resolve` also resolves its incident (D's
    revert: the bypass was the last thing the incident owed), once its alerts have resolved."""
    flow_run_id, flow_run_name = current_flow_run()
    with session_for(store_url()) as session:
        row = follow_ups.close_follow_up(
            session,
            key=key,
            by=f"flow run {flow_run_name or flow_run_id or 'outside Prefect'}",
            note=note,
            placeholder=follow_up_spec(placeholder) if placeholder is not None else None,
        )
        if row.incident_id is None:
            return None
        incident = incidents.get_incident(session, incident_id=row.incident_id)
        if resolve is not None and IncidentStatus(incident.status).is_open:
            lifecycle.fixed(
                session, incident_id=row.incident_id, summary=resolve, flow_run_id=flow_run_id
            )
        return _ref(session, row.incident_id)


@task(name="probe-flow-run-active", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def probe_flow_run_active(flow_run_id: str) -> bool:
    """Is that flow run still going (scheduled, pending, running, paused)? A run that crashed
    mid-mitigation must not keep its incident from being worked on for ever."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    return run.state is not None and not run.state.is_final()


@_store_task("load-incident")
def load_incident(incident_id: int) -> IncidentRecord:
    with session_for(store_url(), read_only=True) as session:
        return queries.load_incident(session, incident_id=incident_id)


@_store_task("record-report")
def record_report(incident_id: int, path: str) -> None:
    """Remember where the report is, so re-rendering rewrites the same file."""
    with session_for(store_url()) as session:
        first = incidents.get_incident(session, incident_id=incident_id).report_path is None
        incidents.set_report(session, incident_id=incident_id, path=path)
        if first:
            incidents.add_event(
                session,
                incident_id=incident_id,
                kind=EventKind.REPORT,
                summary=f"post-incident report written: {path}",
                flow_run_id=current_flow_run()[0],
            )


@task(name="count-restarts", cache_policy=NO_CACHE)
def restarts_made(ref: IncidentRef | None, namespace: str, deployment: str) -> int:
    """Rollout restarts this automation already applied to the Deployment for the incident."""
    if ref is None:
        return 0
    target = Target(kind="Deployment", namespace=namespace, name=deployment)
    with session_for(store_url(), read_only=True) as session:
        return actions.count_applied(
            session, incident_id=ref.id, action=ActionKind.RESTART.value, target_key=target.key
        )
