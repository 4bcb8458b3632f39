"""Triage: which branch of the runbook's tree an incident is, then that scenario's flow.

    Incident detected
    ├── Workload error: A single pod crashes, B several pods CrashLoop, C all deps degraded
    └── Platform error: D Auth (Auth0 JWKS), E Network / Ingress, F Storage (Postgres / Redis)

The incident is an Alertmanager v4 payload, or nothing for a sweep. Alerts are hints; the branch
is chosen on what the probes see (`diagnose_incident`), platform before workload, because a
Redis outage also crashes the workers and restarting them fixes nothing. The decision and its
evidence are published before anything runs; unclear evidence escalates with that evidence
instead of guessing. The chosen scenario flow runs as a subflow with the same dry_run.

Every step is also recorded in the incident store (`tasks.records.steps`): the alerts open an
incident or join the open one (a duplicate or a grouped alert for the same target never opens
a second), the decision triages it, the scenario's outcome verifies or escalates it, and a
verified fix that still holds after the hold period resolves it. The scenario runs under the
incident's tag (`incident-<id>`), which links its audit rows and lets the Prefect UI filter the
incident's runs. When the incident resolves or escalates, `post-incident` writes its report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from prefect import flow, tags
from pydantic import BaseModel, ConfigDict, Field

from flows.hpa_thrash import HpaThrashParams, remediate_hpa_thrash
from flows.ingress_503 import Ingress503Params, remediate_ingress_503
from flows.jwks_outage import JwksOutageParams, remediate_jwks_outage
from flows.pod_crash import PodCrashParams, remediate_pod_crash
from flows.post_incident import post_incident
from flows.queue_backlog import QueueBacklogParams, remediate_queue_backlog
from flows.runs import run_name, run_parameters, tell, tell_change, tell_outcome
from flows.stateful_failover import StatefulFailoverParams, remediate_stateful_failover
from store.models import IncidentStatus
from tasks.changes.gate import GuardRefused
from tasks.connection import settings as current_settings
from tasks.diagnoses.triage import alert_symptom, diagnose_incident, symptom_present
from tasks.models.alerts import Alert, AlertBatch, alert_target, firing, in_scope
from tasks.models.diagnosis import Action, Diagnosis, Scenario, TriageDecision
from tasks.models.outcome import Outcome, OutcomeStatus
from tasks.models.scenario_call import ScenarioCall, VerifyPolicy
from tasks.probes.triage import probe_incident
from tasks.records.artifacts import publish_outcome, publish_triage
from tasks.records.steps import (
    IncidentRef,
    probe_flow_run_active,
    record_alerts_outstanding,
    record_evidence,
    record_failure,
    record_hold,
    record_mitigating,
    record_outcome,
    record_triage,
    restarts_made,
    wait_for_incident_change,
)
from tasks.retries import spread_polls
from tasks.run_context import Concurrently, current_flow_run
from tasks.settings import Settings
from tasks.verifies import verify_hold_elapsed

__all__ = ["ScenarioCall", "TriageOutcome", "TriageParams", "VerifyPolicy", "triage"]


DEFAULT_VERIFY = VerifyPolicy()


class TriageParams(BaseModel):
    """The incident and how far the scenario flow may go: the flow's parameters, validated."""

    alerts: AlertBatch | None = Field(
        default=None, description="the Alertmanager v4 webhook body; empty for a sweep"
    )
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    approve_permissive: bool = Field(
        default=False, description="pre-approve runbook D's permissive flip (hard-rule bypass)"
    )
    approve_postgres_delete: bool = Field(
        default=False, description="pre-approve runbook F's delete of the Postgres pod"
    )
    approved_by: str = Field(default="", description="who pre-approved")
    approval_timeout_seconds: int = Field(default=3600, ge=1)
    verify: VerifyPolicy = Field(
        default_factory=VerifyPolicy, description="how patiently the fix is proven"
    )


class ScenarioParams(Protocol):
    """A scenario flow's Params: built from triage's decision by one constructor."""

    @classmethod
    def from_call(cls, call: ScenarioCall) -> BaseModel: ...


class TriageOutcome(BaseModel):
    """What triage decided and why, the plan (or the changes made), and the scenario's outcome."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario | None
    reason: str
    escalate: bool
    dry_run: bool
    plan: tuple[str, ...]  # the scenario's changes, one line each: planned or applied
    outcome: Outcome | None  # None: no scenario ran
    decision: TriageDecision | None  # None: the payload only resolved alerts
    incident_id: int | None = None  # the incident in the store; None: nothing to record
    incident_status: IncidentStatus | None = None
    report: str | None = None  # the post-incident report's path, when one was written
    ignored: tuple[str, ...] = ()  # alerts outside the configured namespaces, and why


# The runbook's branches, in the tree's order: the flow that handles each and its Params, whose
# fields are the flow's keyword parameters. A branch without an entry is still decided and
# explained, then escalated (`_not_registered`).
SCENARIO_FLOWS: dict[Scenario, tuple[Callable[..., Outcome], type[ScenarioParams]]] = {
    Scenario.POD_CRASH: (remediate_pod_crash, PodCrashParams),
    Scenario.HPA_THRASH: (remediate_hpa_thrash, HpaThrashParams),
    Scenario.QUEUE_BACKLOG: (remediate_queue_backlog, QueueBacklogParams),
    Scenario.JWKS_OUTAGE: (remediate_jwks_outage, JwksOutageParams),
    Scenario.INGRESS_503: (remediate_ingress_503, Ingress503Params),
    Scenario.STATEFUL_FAILOVER: (remediate_stateful_failover, StatefulFailoverParams),
}


def as_keywords(params: BaseModel) -> dict[str, Any]:
    """A scenario's Params as its flow's keyword parameters (nested models stay objects)."""
    return {name: getattr(params, name) for name in type(params).model_fields}


def _not_registered(decision: TriageDecision) -> Outcome:
    assert decision.scenario is not None
    return Outcome.escalated(
        Diagnosis(
            scenario=decision.scenario,
            action=Action.ESCALATE,
            summary=decision.reason,
            evidence=decision.evidence,
            namespace=decision.namespace,
            name=decision.target,
        ),
        f"scenario {decision.scenario.value} has no flow registered in triage yet: "
        f"{decision.reason}",
    )


def _under_way_elsewhere(incident: IncidentRef | None) -> str | None:
    """Another live run is mitigating this incident: a duplicate alert must not fix it twice."""
    if incident is None or incident.mitigating_run is None:
        return None
    if incident.mitigating_run == current_flow_run()[0]:
        return None
    if not probe_flow_run_active(incident.mitigating_run):
        return None
    return (
        f"incident {incident.id} is already being mitigated by flow run "
        f"{incident.mitigating_run}: this alert joined it, nothing more to do"
    )


def _hold(params: TriageParams, decision: TriageDecision, incident: IncidentRef) -> IncidentRef:
    """Wait out the hold period, then look once more, at the decision's symptom and at every
    symptom the incident's alerts report: held if all are gone. Resolved once its alerts have
    resolved too; until then, watch for the symptom to come back."""
    settings = current_settings()
    hold = params.verify.hold_seconds
    hold = settings.incidents.hold_seconds if hold is None else hold
    tell("incident %d verified: holding %g s to see the fix hold", incident.id, hold)
    since = datetime.now(UTC)
    retries, delay = spread_polls(hold, shortest=0.1, longest=5.0)
    verify_hold_elapsed.with_options(retries=retries, retry_delay_seconds=delay)(since, hold)
    alerts = _firing_in_scope(params, settings)
    incident = record_hold(incident, _still_wrong(settings, decision, alerts, since), hold)
    if incident.status is IncidentStatus.VERIFIED:
        incident = _await_alerts(settings, decision, alerts, incident, since, hold)
    return incident


def _firing_in_scope(params: TriageParams, settings: Settings) -> tuple[Alert, ...]:
    batch = in_scope(params.alerts, settings.workloads.scope)[0] if params.alerts else None
    return firing(batch) if batch is not None else ()


def _still_wrong(
    settings: Settings, decision: TriageDecision, alerts: Sequence[Alert], since: datetime
) -> str | None:
    """What the cluster still shows of the decision's symptom or of any symptom its alerts
    report (the queue an alert names, not only the pods the branch restarted); None: nothing."""
    snapshot = probe_incident(alerts, decision=decision)
    return symptom_present(decision, snapshot, since, settings.environment) or alert_symptom(
        alerts, decision, snapshot, since, settings.environment
    )


def _await_alerts(
    settings: Settings,
    decision: TriageDecision,
    alerts: Sequence[Alert],
    incident: IncidentRef,
    since: datetime,
    hold: float,
) -> IncidentRef:
    """The fix held but alerts still fire: watch until they resolve (the intake's resolved
    notification resolves the incident), the symptom comes back (escalated), or
    `alert_wait_seconds` pass with the alerts still firing (escalated: the rule and the probes
    disagree, a human decides)."""
    waited, patience = 0.0, settings.incidents.alert_wait_seconds
    period = min(max(hold, 1.0), 30.0)
    tell("incident %d held: waiting up to %g s for its alerts to resolve", incident.id, patience)
    while incident.status is IncidentStatus.VERIFIED:
        if waited >= patience:
            return record_alerts_outstanding(incident, patience)
        incident = wait_for_incident_change(incident, min(period, patience - waited))
        waited += period
        if incident.status is IncidentStatus.VERIFIED:
            came_back = _still_wrong(settings, decision, alerts, since)
            if came_back is not None:
                return record_hold(incident, came_back, waited + hold)
    return incident


def _run_scenario(
    params: TriageParams,
    decision: TriageDecision,
    incident: IncidentRef | None,
    restarts_already_made: int,
) -> tuple[Outcome, IncidentRef | None]:
    assert decision.scenario is not None
    entry = SCENARIO_FLOWS.get(decision.scenario)
    call = ScenarioCall(
        decision=decision,
        dry_run=params.dry_run,
        approve_permissive=params.approve_permissive,
        approve_postgres_delete=params.approve_postgres_delete,
        approved_by=params.approved_by,
        approval_timeout_seconds=params.approval_timeout_seconds,
        verify=params.verify,
        restarts_already_made=restarts_already_made,
    )
    try:
        with tags(*([incident.tag] if incident is not None else [])):
            if entry is None:
                outcome = _not_registered(decision)
            else:
                run, params_type = entry
                outcome = run(**as_keywords(params_type.from_call(call)))
    except GuardRefused as exc:  # nothing was sent: a human decides, with every verdict
        outcome = Outcome(
            scenario=decision.scenario,
            status=OutcomeStatus.ESCALATED,
            changes=(exc.record,),
            message=f"escalated: {exc}",
        )
    except Exception as exc:
        if incident is not None:  # the record says so before the run fails
            record_failure(incident, f"{type(exc).__name__}: {exc}", dry_run=params.dry_run)
        raise
    if outcome.status is OutcomeStatus.NOTHING_TO_DO and not params.dry_run:
        outcome = _recheck_symptom(decision, outcome)
    for change in outcome.changes:
        tell_change(change)
    tell_outcome(outcome)
    publish_outcome(outcome, "triage-outcome")
    if incident is not None:
        incident = record_outcome(incident, outcome, dry_run=params.dry_run)
        # A bypassed hard rule is not resolved by holding: its P1 revert resolves it.
        if incident.status is IncidentStatus.VERIFIED and outcome.bypass is None:
            incident = _hold(params, decision, incident)
    return outcome, incident


def _recheck_symptom(decision: TriageDecision, outcome: Outcome) -> Outcome:
    """The scenario found nothing to do: look at the symptom that opened the incident once
    more. Still there, the incident escalates with the evidence; "resolved" means gone."""
    settings = current_settings()
    still = symptom_present(decision, probe_incident(decision=decision), None, settings.environment)
    if still is None or outcome.diagnosis is None:
        return outcome
    return Outcome.escalated(
        outcome.diagnosis,
        f"the scenario found nothing to do ({outcome.message}), but the symptom is still "
        f"there: {still}",
    )


def _report(incident: IncidentRef | None, dry_run: bool, outcome: Outcome | None) -> str | None:
    """The post-incident report, once there is something to report: the incident resolved or
    escalated, or it was mitigated by bypassing a hard rule (the P1 revert is still owed)."""
    if incident is None or dry_run:
        return None
    bypassed = outcome is not None and outcome.bypass is not None
    if incident.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED) or bypassed:
        return str(post_incident(incident_id=incident.id).path)
    return None


def _subject(parameters: Mapping[str, Any]) -> str:
    """What the run is about: the first firing alert and its target, or a sweep."""
    alerts = parameters.get("alerts")
    try:
        batch = alerts if alerts is None else AlertBatch.model_validate(alerts)
    except ValueError:  # the run fails its parameter validation anyway; never its name
        return "invalid alerts"
    if batch is None or not batch.alerts:
        return "sweep"
    first, *_ = firing(batch) or batch.alerts
    target = alert_target(first)
    where = "/".join(part for part in (target.namespace, target.named) if part)
    resolved = "" if first.firing else " resolved"
    return f"{first.name or 'alert'} {where}".strip() + resolved


def _run_name() -> str:
    parameters = run_parameters()
    return run_name("triage", _subject(parameters), dry_run=parameters.get("dry_run") is True)


def _tell_decision(decision: TriageDecision) -> None:
    branch = (
        f"scenario {decision.scenario.value} ({decision.scenario.runbook_title})"
        if decision.scenario is not None
        else "no scenario"
    )
    target = "/".join(part for part in (decision.namespace, decision.target) if part)
    tell(
        "decision: %s%s%s: %s (%d evidence line(s))",
        branch,
        f" on {target}" if target else "",
        ", escalated" if decision.escalate else "",
        decision.reason,
        len(decision.evidence),
    )


@flow(name="triage", flow_run_name=_run_name)
def triage(
    alerts: AlertBatch | None = None,
    dry_run: bool = True,
    approve_permissive: bool = False,
    approve_postgres_delete: bool = False,
    approved_by: str = "",
    approval_timeout_seconds: int = 3600,
    verify: VerifyPolicy = DEFAULT_VERIFY,
) -> TriageOutcome:
    """Record the alerts, probe, decide the branch (platform first), publish why, run that
    scenario's flow, and follow the incident to verified, resolved or escalated.

    Args:
        alerts: the Alertmanager v4 webhook body (version, status, alerts with labels,
            startsAt and fingerprint); unset: a sweep, where the probes alone decide
        dry_run: plan only, with a server-side dry run that changes nothing; untick to change
            the cluster
        approve_permissive: pre-approve runbook D's permissive flip of ALPHASWARM_AUTH_ENFORCE
            (a hard-rule bypass); otherwise the run pauses for a human to approve it
        approve_postgres_delete: pre-approve runbook F's delete of the Postgres pod (the only
            database instance); otherwise the run pauses for a human to approve it
        approved_by: who pre-approved (with approve_permissive or approve_postgres_delete)
        approval_timeout_seconds: how long a paused run waits for an approval before it
            escalates
        verify: how patiently the fix is proven; unset fields keep each scenario's defaults
    """
    params = TriageParams(
        alerts=alerts,
        dry_run=dry_run,
        approve_permissive=approve_permissive,
        approve_postgres_delete=approve_postgres_delete,
        approved_by=approved_by,
        approval_timeout_seconds=approval_timeout_seconds,
        verify=verify,
    )
    settings = current_settings()
    batch, ignored = (
        in_scope(params.alerts, settings.workloads.scope) if params.alerts else (None, ())
    )
    if params.alerts is not None and batch is None:
        return _ignored(params, ignored)
    for why in ignored:
        tell("ignored: %s", why)
    if batch is not None and not firing(batch):
        return _told(_only_resolved_alerts(params, record_evidence(batch)))
    alerts_firing = firing(batch) if batch is not None else ()
    # The alerts are recorded while the probes look: neither waits for the other.
    with Concurrently(workers=1) as at_once:
        recorded = at_once(lambda: record_evidence(batch) if batch is not None else None)
        snapshot = probe_incident(alerts_firing)
    incident = recorded()
    decision = diagnose_incident(alerts_firing, snapshot, settings.environment)
    # The decision's artifact and its record are independent requests: made at once.
    with Concurrently(workers=1) as at_once:
        published = at_once(lambda: publish_triage(decision, "triage-decision"))
        _tell_decision(decision)
        incident = record_triage(incident, decision, dry_run=params.dry_run)
    published()
    outcome: Outcome | None = None
    reason = decision.reason
    if decision.scenario is not None and not decision.escalate:
        # The claim (a write) and the restart count (a read) at once, both before any change.
        triaged = incident
        with Concurrently(workers=1) as at_once:
            counted = at_once(
                lambda: restarts_made(triaged, decision.namespace or "", decision.target or "")
            )
            if incident is not None and not params.dry_run:
                incident = record_mitigating(incident, decision.scenario)
        restarts = counted()
        busy = _under_way_elsewhere(incident)
        if busy is not None:
            reason = busy
            tell("%s", busy)
        else:
            outcome, incident = _run_scenario(params, decision, incident, restarts)
    report = _report(incident, params.dry_run, outcome)
    return _told(
        TriageOutcome(
            scenario=decision.scenario,
            reason=reason,
            escalate=decision.escalate or (outcome is not None and outcome.status == "escalated"),
            dry_run=params.dry_run,
            plan=tuple(f"{c.status}: {c.summary}" for c in outcome.changes) if outcome else (),
            outcome=outcome,
            decision=decision,
            incident_id=incident.id if incident is not None else None,
            incident_status=incident.status if incident is not None else None,
            report=report,
            ignored=ignored,
        )
    )


def _told(result: TriageOutcome) -> TriageOutcome:
    """The run's last lines: where the incident stands and where its report is."""
    if result.incident_id is not None:
        status = result.incident_status.value if result.incident_status is not None else "?"
        tell("incident %d: %s", result.incident_id, status)
    if result.report is not None:
        tell("report: %s", result.report)
    return result


def _ignored(params: TriageParams, ignored: tuple[str, ...]) -> TriageOutcome:
    """Every alert is about something outside the configured namespaces: not an AlphaSwarm
    incident, so nothing is recorded and nothing runs."""
    tell("ignored: every alert is outside the configured namespaces (%s)", ignored[0])
    return TriageOutcome(
        scenario=None,
        reason=f"ignored: every alert is outside the configured namespaces ({ignored[0]})",
        escalate=False,
        dry_run=params.dry_run,
        plan=(),
        outcome=None,
        decision=None,
        ignored=ignored,
    )


def _only_resolved_alerts(params: TriageParams, incident: IncidentRef | None) -> TriageOutcome:
    """A resolved alert is history, never a reason to act; it may close its incident."""
    if incident is None:
        reason = "every alert in the payload is resolved and none belongs to an open incident"
    elif incident.status is IncidentStatus.RESOLVED:
        reason = f"every alert of incident {incident.id} resolved: the incident is resolved"
    else:
        reason = f"alerts of incident {incident.id} resolved; it stays {incident.status}"
    tell("%s", reason)
    return TriageOutcome(
        scenario=None,
        reason=reason,
        escalate=False,
        dry_run=params.dry_run,
        plan=(),
        outcome=None,
        decision=None,
        incident_id=incident.id if incident is not None else None,
        incident_status=incident.status if incident is not None else None,
        report=_report(incident, params.dry_run, None),
    )
