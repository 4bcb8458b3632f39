"""Triage: which branch of the runbook's tree an incident is, then that scenario's flow.

    Incident detected
    ├── Workload error: A single pod crashes, B several pods CrashLoop, C all deps degraded
    └── Platform error: D Auth (Auth0 JWKS), E Network / Ingress, F Storage (Postgres / Redis)

The incident is an Alertmanager v4 payload, or nothing for a sweep. Alerts are hints; the branch
is chosen on what the probes see (`diagnose_incident`), platform before workload, because a
Redis outage also crashes the workers and restarting them fixes nothing. The decision and its
evidence are published before anything runs; unclear evidence escalates with that evidence
instead of guessing. The chosen scenario flow runs as a subflow with the same dry_run.

Every step is also recorded in the incident store (`tasks.incidents`): the alerts open an
incident or join the open one (a duplicate or a grouped alert for the same target never opens
a second), the decision triages it, the scenario's outcome verifies or escalates it, and a
verified fix that still holds after the hold period resolves it. The scenario runs under the
incident's tag (`incident-<id>`), which links its audit rows and lets the Prefect UI filter the
incident's runs. When the incident resolves or escalates, `post-incident` writes its report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prefect import flow, tags
from pydantic import BaseModel, ConfigDict, Field

from flows.hpa_thrash import HpaThrashParams, remediate_hpa_thrash
from flows.ingress_503 import Ingress503Params, remediate_ingress_503
from flows.jwks_outage import JwksOutageParams, remediate_jwks_outage
from flows.pod_crash import PodCrashParams, remediate_pod_crash
from flows.post_incident import PostIncidentParams, post_incident
from flows.queue_backlog import QueueBacklogParams, remediate_queue_backlog
from flows.stateful_failover import StatefulFailoverParams, remediate_stateful_failover
from store.models import IncidentStatus
from tasks.adapters.errors import AdapterError
from tasks.alerts import AlertBatch, firing
from tasks.diagnosis import Action, Diagnosis, Scenario, TriageDecision
from tasks.incident_tags import current_flow_run
from tasks.incidents import (
    IncidentRef,
    probe_flow_run_active,
    record_evidence,
    record_failure,
    record_hold,
    record_mitigating,
    record_outcome,
    record_triage,
)
from tasks.outcome import Outcome
from tasks.platform_probes import probe_ingress, probe_jwks, probe_stateful
from tasks.publish import publish_outcome, publish_triage
from tasks.retries import spread_polls
from tasks.settings import Settings
from tasks.snapshots import QueueSnapshot, TriageSnapshot
from tasks.triage import diagnose_incident, diagnose_recurrence
from tasks.verifies import verify_hold_elapsed
from tasks.workload_probes import (
    probe_crashing_pods,
    probe_hpa_decisions,
    probe_queue_depth,
    probe_worker_activity,
)


class VerifyPolicy(BaseModel):
    """How patiently the scenario flow proves its fix; unset fields keep that flow's defaults.

    Production keeps the defaults (B waits a minute without a rescale before calling the HPA
    stable). A rehearsal on the sandbox, whose controllers tick many times a second, shortens
    them so a run takes seconds; the checks themselves stay the same."""

    model_config = ConfigDict(frozen=True)

    attempts: int | None = Field(default=None, ge=1, description="polls of each verify")
    delay_seconds: float | None = Field(default=None, ge=0, description="pause between polls")
    quiet_seconds: float | None = Field(
        default=None, gt=0, description="B: how long without a rescale counts as stable"
    )
    hold_seconds: float | None = Field(
        default=None,
        ge=0,
        description="how long a verified fix must hold before the incident resolves "
        "(default REMEDIATE_INCIDENTS__HOLD_SECONDS)",
    )

    def overrides(self, *, delay: bool = True, quiet: bool = False) -> dict[str, float | int]:
        """The set fields, named as the scenario Params name them (for those that have them)."""
        found: dict[str, float | int] = {}
        if self.attempts is not None:
            found["verify_attempts"] = self.attempts
        if delay and self.delay_seconds is not None:
            found["verify_delay_seconds"] = self.delay_seconds
        if quiet and self.quiet_seconds is not None:
            found["quiet_seconds"] = self.quiet_seconds
        return found


class TriageParams(BaseModel):
    """The incident and how far the scenario flow may go."""

    alerts: AlertBatch | None = Field(
        default=None, description="the Alertmanager v4 webhook body; empty for a sweep"
    )
    dry_run: bool = Field(default=True, description="plan with dryRun=All; change nothing")
    approve_permissive: bool = Field(
        default=False, description="pre-approve runbook D's permissive flip (hard-rule bypass)"
    )
    approved_by: str = Field(default="", description="who pre-approved the flip")
    approval_timeout_seconds: int = Field(default=3600, ge=1)
    verify: VerifyPolicy = Field(
        default_factory=VerifyPolicy, description="how patiently the fix is proven"
    )


class ScenarioCall(BaseModel):
    """What a scenario flow is started with: the triage decision (its target) and the run's
    switches. One type for every entry of SCENARIO_FLOWS, so adding a scenario is one line."""

    model_config = ConfigDict(frozen=True)

    decision: TriageDecision
    dry_run: bool
    approve_permissive: bool = False
    approved_by: str = ""
    approval_timeout_seconds: int = 3600
    verify: VerifyPolicy = VerifyPolicy()


ScenarioFlow = Callable[[ScenarioCall], Outcome]


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


def _pod_crash(call: ScenarioCall) -> Outcome:
    d = call.decision
    defaults = PodCrashParams()
    return remediate_pod_crash(
        PodCrashParams(
            namespace=d.namespace or defaults.namespace,
            deployment=d.target or defaults.deployment,
            dry_run=call.dry_run,
            **call.verify.overrides(delay=False),
        )
    )


def _hpa_thrash(call: ScenarioCall) -> Outcome:
    """B acts on the HPA triage found flapping (or the one in front of the crashing pods)."""
    d = call.decision
    defaults = HpaThrashParams()
    return remediate_hpa_thrash(
        HpaThrashParams(
            namespace=d.namespace or defaults.namespace,
            hpa=d.target or defaults.hpa,
            dry_run=call.dry_run,
            **call.verify.overrides(quiet=True),
        )
    )


def _queue_backlog(call: ScenarioCall) -> Outcome:
    """C scales the worker Deployment triage found behind the deep queue."""
    d = call.decision
    defaults = QueueBacklogParams()
    return remediate_queue_backlog(
        QueueBacklogParams(
            namespace=d.namespace or defaults.namespace,
            deployment=d.target or defaults.deployment,
            dry_run=call.dry_run,
            **call.verify.overrides(),
        )
    )


def _ingress_503(call: ScenarioCall) -> Outcome:
    """E probes the controller and the runbook's backends itself: which Deployment it restarts
    comes from its own readiness evidence, not from triage's target."""
    return remediate_ingress_503(Ingress503Params(dry_run=call.dry_run, **call.verify.overrides()))


def _stateful_failover(call: ScenarioCall) -> Outcome:
    """F diagnoses Postgres against Redis itself (and refuses Postgres in production)."""
    d = call.decision
    defaults = StatefulFailoverParams()
    return remediate_stateful_failover(
        StatefulFailoverParams(
            namespace=d.namespace or defaults.namespace,
            dry_run=call.dry_run,
            **call.verify.overrides(),
        )
    )


def _jwks_outage(call: ScenarioCall) -> Outcome:
    d = call.decision
    defaults = JwksOutageParams()
    return remediate_jwks_outage(
        JwksOutageParams(
            namespace=d.namespace or defaults.namespace,
            deployment=d.target or defaults.deployment,
            dry_run=call.dry_run,
            approve_permissive=call.approve_permissive,
            approved_by=call.approved_by,
            approval_timeout_seconds=call.approval_timeout_seconds,
            **call.verify.overrides(delay=False),
        )
    )


# The runbook's branches and the flow that handles each, in the tree's order. A branch without
# an entry is still decided and explained, then escalated (`_not_registered`).
SCENARIO_FLOWS: dict[Scenario, ScenarioFlow] = {
    Scenario.POD_CRASH: _pod_crash,
    Scenario.HPA_THRASH: _hpa_thrash,
    Scenario.QUEUE_BACKLOG: _queue_backlog,
    Scenario.JWKS_OUTAGE: _jwks_outage,
    Scenario.INGRESS_503: _ingress_503,
    Scenario.STATEFUL_FAILOVER: _stateful_failover,
}


# Triage reads the broker once, plus a retry: a broker that does not answer is evidence for the
# decision (Redis may be the very thing that is down), not a reason to hold up every branch.
QUEUE_PROBE_RETRIES = 1


def _queue_snapshot(settings: Settings) -> QueueSnapshot | None:
    """Branch C's evidence: the queue depth from the broker and `celery inspect active` in a
    worker pod. None when no broker is configured (REMEDIATE_CELERY__BROKER_URL unset)."""
    broker, w = settings.celery, settings.workloads
    if not broker.configured:
        return None
    queue = broker.queues[0]
    depth: int | None = None
    error = ""
    try:
        depth = probe_queue_depth.with_options(retries=QUEUE_PROBE_RETRIES)(queue)
    except AdapterError as exc:
        error = str(exc)
    return probe_worker_activity(
        w.namespace,
        w.worker_deployment,
        queue,
        depth,
        alarm=broker.queue_depth_alarm,
        broker_error=error,
    )


def _probe(settings: Settings) -> TriageSnapshot:
    w = settings.workloads
    return TriageSnapshot(
        observed_at=datetime.now(UTC),
        stateful=probe_stateful(w.namespace, w.postgres_selector, w.redis_pod),
        jwks=probe_jwks(
            w.namespace,
            w.core_deployment,
            settings.auth.jwks_url,
            w.admin_namespace,
            w.control_plane_deployment,
            w.auth_enforce_variable,
        ),
        ingress=probe_ingress(
            w.ingress_namespace,
            w.ingress_controller,
            [(w.namespace, w.client_deployment), (w.admin_namespace, w.control_plane_deployment)],
        ),
        crashes=(
            probe_crashing_pods(w.namespace, w.core_deployment),
            probe_crashing_pods(w.namespace, w.worker_deployment),
        ),
        hpa=probe_hpa_decisions(w.namespace, w.hpa, w.worker_deployment),
        queue=_queue_snapshot(settings),
    )


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
    """Wait out the hold period, then look once more: resolved if the fix held."""
    settings = Settings()
    hold = params.verify.hold_seconds
    hold = settings.incidents.hold_seconds if hold is None else hold
    since = datetime.now(UTC)
    retries, delay = spread_polls(hold, shortest=0.1, longest=5.0)
    verify_hold_elapsed.with_options(retries=retries, retry_delay_seconds=delay)(since, hold)
    came_back = diagnose_recurrence(decision, _probe(settings), since)
    return record_hold(incident, came_back, hold)


def _run_scenario(
    params: TriageParams, decision: TriageDecision, incident: IncidentRef | None
) -> tuple[Outcome, IncidentRef | None]:
    assert decision.scenario is not None
    run = SCENARIO_FLOWS.get(decision.scenario)
    call = ScenarioCall(
        decision=decision,
        dry_run=params.dry_run,
        approve_permissive=params.approve_permissive,
        approved_by=params.approved_by,
        approval_timeout_seconds=params.approval_timeout_seconds,
        verify=params.verify,
    )
    if incident is not None and not params.dry_run:
        incident = record_mitigating(incident, decision.scenario)
    try:
        with tags(*([incident.tag] if incident is not None else [])):
            outcome = run(call) if run is not None else _not_registered(decision)
    except Exception as exc:
        if incident is not None:  # the record says so before the run fails
            record_failure(incident, f"{type(exc).__name__}: {exc}", dry_run=params.dry_run)
        raise
    publish_outcome(outcome, "triage-outcome")
    if incident is not None:
        incident = record_outcome(incident, outcome, dry_run=params.dry_run)
        # A bypassed hard rule is not resolved by holding: its P1 revert resolves it.
        if incident.status is IncidentStatus.VERIFIED and outcome.bypass is None:
            incident = _hold(params, decision, incident)
    return outcome, incident


def _report(incident: IncidentRef | None, dry_run: bool, outcome: Outcome | None) -> str | None:
    """The post-incident report, once there is something to report: the incident resolved or
    escalated, or it was mitigated by bypassing a hard rule (the P1 revert is still owed)."""
    if incident is None or dry_run:
        return None
    bypassed = outcome is not None and outcome.bypass is not None
    if incident.status in (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED) or bypassed:
        return str(post_incident(PostIncidentParams(incident_id=incident.id)).path)
    return None


@flow(name="triage", flow_run_name="triage")
def triage(params: TriageParams | None = None) -> TriageOutcome:
    """Record the alerts, probe, decide the branch (platform first), publish why, run that
    scenario's flow, and follow the incident to verified, resolved or escalated."""
    params = params or TriageParams()
    incident = record_evidence(params.alerts) if params.alerts is not None else None
    if params.alerts is not None and not firing(params.alerts):
        return _only_resolved_alerts(params, incident)
    alerts = firing(params.alerts) if params.alerts is not None else ()
    decision = diagnose_incident(alerts, _probe(Settings()))
    publish_triage(decision, "triage-decision")
    incident = record_triage(incident, decision, dry_run=params.dry_run)
    outcome: Outcome | None = None
    reason = decision.reason
    if decision.scenario is not None and not decision.escalate:
        busy = _under_way_elsewhere(incident)
        if busy is not None:
            reason = busy
        else:
            outcome, incident = _run_scenario(params, decision, incident)
    report = _report(incident, params.dry_run, outcome)
    return TriageOutcome(
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
    )


def _only_resolved_alerts(params: TriageParams, incident: IncidentRef | None) -> TriageOutcome:
    """A resolved alert is history, never a reason to act; it may close its incident."""
    if incident is None:
        reason = "every alert in the payload is resolved and none belongs to an open incident"
    elif incident.status is IncidentStatus.RESOLVED:
        reason = f"every alert of incident {incident.id} resolved: the incident is resolved"
    else:
        reason = f"alerts of incident {incident.id} resolved; it stays {incident.status}"
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
