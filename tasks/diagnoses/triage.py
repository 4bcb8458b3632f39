"""The runbook's triage tree as one pure decision: alerts and a snapshot in, a branch out.

Platform errors (F storage, D auth, E ingress) are checked before workload errors (B a thrashing
HPA or several crashing pods, A a single crash, C a deep queue), because a platform failure
produces workload symptoms: with Redis down the workers crash too, and restarting them fixes
nothing. A branch is chosen only on a fault a probe saw (`tasks.diagnoses.findings`); a probe
that could not look is named in the decision and never picks a branch, so a managed Postgres,
an image without curl or a missing ingress controller cannot take over triage. Alerts are
hints: they say which object to look at first (the pod, Deployment or HPA they name), never
that it is broken.

| evidence (a fault seen)                                        | branch |
| -------------------------------------------------------------- | ------ |
| a Postgres pod exists and none is ready; redis-master-0 down    | F      |
| JWKS fails from a pod, Auth0 answers 5xx, or core logs jwks_unreachable | D |
| the ingress controller has no ready pod; a backend has no ready endpoint | E |
| the HPA rescaled 4+ times between 2+ sizes in 10 min            | B      |
| 2+ pods of one Deployment crash-loop (HPA calm)                 | B (inspect, then A's restart) |
| 1 pod crash-looping (over a window: Running between crashes counts) | A  |
| the queue holds at least the alarm                              | C      |
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tasks.diagnoses.crashes import crashed_since
from tasks.diagnoses.findings import (
    JWKS_SYMPTOM,
    Finding,
    crash_finding,
    crashing_pods,
    hpa_finding,
    ingress_finding,
    jwks_finding,
    postgres_finding,
    queue_finding,
    redis_finding,
)
from tasks.diagnoses.platform import (
    PERMISSIVE,
    diagnose_ingress,
    diagnose_jwks,
    diagnose_stateful,
)
from tasks.diagnoses.workload import diagnose_hpa_thrash
from tasks.models.alerts import Alert, alert_target
from tasks.models.diagnosis import Action, Diagnosis, Scenario, TriageDecision
from tasks.models.snapshots import HpaThrashSnapshot, PodCrashSnapshot, TriageSnapshot
from tasks.settings import Environment

# Words in an alert's name that point at a branch (lowercase substring match, first wins).
# Evidence for the reader only: the branch is chosen on what the probes see.
ALERT_HINTS: tuple[tuple[str, Scenario], ...] = (
    ("postgres", Scenario.STATEFUL_FAILOVER),
    ("redis", Scenario.STATEFUL_FAILOVER),
    ("statefulset", Scenario.STATEFUL_FAILOVER),
    ("jwks", Scenario.JWKS_OUTAGE),
    ("auth0", Scenario.JWKS_OUTAGE),
    ("blackbox", Scenario.JWKS_OUTAGE),
    ("probefailed", Scenario.JWKS_OUTAGE),
    ("ingress", Scenario.INGRESS_503),
    ("nginx", Scenario.INGRESS_503),
    ("endpoint", Scenario.INGRESS_503),
    ("hpa", Scenario.HPA_THRASH),
    ("crashloop", Scenario.POD_CRASH),
    ("queue", Scenario.QUEUE_BACKLOG),
    ("celery", Scenario.QUEUE_BACKLOG),
)


def alert_hint(alert: Alert) -> Scenario | None:
    name = alert.name.lower()
    return next((scenario for word, scenario in ALERT_HINTS if word in name), None)


def findings(snapshot: TriageSnapshot) -> list[Finding]:
    """Every probe's finding, platform first, in the tree's order."""
    found: list[Finding] = []
    if snapshot.stateful is not None:
        found += [postgres_finding(snapshot.stateful), redis_finding(snapshot.stateful)]
    if snapshot.jwks is not None:
        found.append(jwks_finding(snapshot.jwks))
    if snapshot.ingress is not None:
        found.append(ingress_finding(snapshot.ingress))
    found.append(hpa_finding(snapshot.hpa, snapshot.observed_at))
    found.append(crash_finding(snapshot.crashes))
    found.append(queue_finding(snapshot.queue, snapshot.queue_not_probed))
    return found


def _named_first(
    crashes: Sequence[PodCrashSnapshot], alerts: Sequence[Alert]
) -> list[tuple[PodCrashSnapshot, list[str]]]:
    """Workloads with crash-looping pods: those the alerts name (by pod or Deployment) first,
    then several crashing before a single one (the tree's order), then as found."""
    targets = [alert_target(a) for a in alerts]
    pods = {(t.namespace, t.pod) for t in targets if t.pod}
    deployments = {(t.namespace, t.deployment) for t in targets if t.deployment}

    def named(s: PodCrashSnapshot) -> bool:
        return (s.namespace, s.deployment_name) in deployments or any(
            (s.namespace, p.name) in pods for p in s.pods
        )

    found = [(s, crashing_pods(s)) for s in crashes]
    found = [(s, names) for s, names in found if names]
    return sorted(found, key=lambda f: (not named(f[0]), len(f[1]) < 2))


def diagnose_incident(
    alerts: Sequence[Alert], snapshot: TriageSnapshot, environment: Environment | None
) -> TriageDecision:
    """Which runbook branch this incident is, on a fault seen; escalate when alerts fire and
    no probe saw one, naming what could not be probed."""
    firing = [a for a in alerts if a.firing]
    hint_lines = tuple(
        f"alert {a.name or a.fingerprint} ({a.fingerprint}) points at "
        + (f"scenario {s.value}" if (s := alert_hint(a)) else "no scenario")
        for a in firing
    )
    seen = findings(snapshot)
    unknown = tuple(f.line() for f in seen if f.inconclusive)
    faults = {f.probe: f for f in seen if f.fault}
    crash_lines = faults["pods"].evidence if "pods" in faults else ()

    def decided(
        scenario: Scenario,
        found: Diagnosis | None,
        reason: str,
        *evidence: str,
        namespace: str | None = None,
        target: str | None = None,
        **more: str | bool | None,
    ) -> TriageDecision:
        """The decision; its target is the diagnosis's unless given (`more`: hpa, queue,
        several_crashing)."""
        if found is not None:
            namespace = namespace or found.namespace
            target = target or found.name or found.selector
        return TriageDecision(
            scenario=scenario,
            reason=reason,
            evidence=(*evidence, *(found.evidence if found else ()), *hint_lines),
            namespace=namespace,
            target=target,
            inconclusive=unknown,
            **more,
        )

    # Platform first, on positive evidence only.
    if snapshot.stateful is not None and ("postgres" in faults or "redis" in faults):
        found = diagnose_stateful(snapshot.stateful, environment)
        explained = (
            f"explained by the datastore outage, not restarted: {'; '.join(crash_lines)}"
            if crash_lines
            else "no workload crash seen"
        )
        return decided(Scenario.STATEFUL_FAILOVER, found, found.summary, explained)
    if snapshot.jwks is not None and "JWKS" in faults:
        found = diagnose_jwks(snapshot.jwks)
        return decided(Scenario.JWKS_OUTAGE, found, found.summary)
    if snapshot.ingress is not None and "ingress" in faults:
        found = diagnose_ingress(snapshot.ingress)
        return decided(Scenario.INGRESS_503, found, found.summary)
    # Then workloads.
    hpa = snapshot.hpa
    if hpa is not None and "HPA" in faults:
        found = diagnose_hpa_thrash(hpa)
        return decided(Scenario.HPA_THRASH, found, found.summary, *crash_lines, hpa=hpa.hpa_name)
    crashing = _named_first(snapshot.crashes, firing)
    if crashing:
        crash, pods = crashing[0]
        where = {"namespace": crash.namespace, "target": crash.deployment_name}
        if len(pods) > 1:
            calm = f"HPA {hpa.hpa_name} is not thrashing" if hpa and hpa.hpa else "no HPA flaps"
            fronting = hpa.hpa_name if hpa and hpa.hpa and _fronts(hpa, crash) else ""
            return decided(
                Scenario.HPA_THRASH,
                None,
                f"{len(pods)} pods of {crash.deployment_name} crash-loop while {calm}: runbook B "
                "(worker log for a runaway task, then each pod inspected as in A)",
                *crash_lines,
                **where,
                hpa=fronting or None,
                several_crashing=True,
            )
        return decided(
            Scenario.POD_CRASH,
            None,
            f"one pod of {crash.deployment_name} crash-loops ({pods[0]}): runbook A",
            *crash_lines,
            **where,
        )
    queue = snapshot.queue
    if queue is not None and "queue" in faults:
        return decided(
            Scenario.QUEUE_BACKLOG,
            None,
            faults["queue"].summary,
            f"active tasks: {queue.active_tasks}",
            namespace=queue.namespace,
            target=queue.deployment_name,
            queue=queue.queue,
        )
    healthy = tuple(f.line() for f in seen if not f.fault and not f.inconclusive)
    if firing:
        named = ", ".join(sorted({alert_target(a).named or "" for a in firing} - {""}))
        return TriageDecision(
            scenario=None,
            escalate=True,
            reason=(
                f"{len(firing)} alert(s) fire but no probe saw a fault that backs a branch of the "
                "runbook: escalating instead of guessing"
                + (f" (alert targets: {named})" if named else "")
                + (f"; {len(unknown)} probe(s) could not tell" if unknown else "")
            ),
            evidence=(*hint_lines, *healthy),
            inconclusive=unknown,
        )
    return TriageDecision(
        scenario=None,
        reason="no alert fires and the probes found nothing to do"
        + (f" ({len(unknown)} could not tell)" if unknown else ""),
        evidence=healthy,
        inconclusive=unknown,
    )


def _fronts(hpa: HpaThrashSnapshot, crash: PodCrashSnapshot) -> bool:
    """The HPA scales the crashing Deployment."""
    return hpa.hpa is not None and hpa.hpa.target.name == crash.deployment_name


def symptom_present(
    decision: TriageDecision,
    snapshot: TriageSnapshot,
    since: datetime | None,
    env: Environment | None,
) -> str | None:
    """What of the incident's symptom the cluster still shows, or None when it is gone.

    With `since` (the verified fix, after the hold period): crashes and rescales count only
    after it, because the lookback still holds those that made the incident. Without it (a
    scenario just said "nothing to do"): the symptom as triage judges it now. Only the decided
    scenario and target are looked at; another problem elsewhere is another incident."""
    scenario, target = decision.scenario, decision.target
    if scenario is Scenario.STATEFUL_FAILOVER and snapshot.stateful is not None:
        found = diagnose_stateful(snapshot.stateful, env)
        return found.summary if found.action is not Action.NONE else None
    if scenario is Scenario.JWKS_OUTAGE and snapshot.jwks is not None:
        jwks = snapshot.jwks
        if (jwks.auth_enforce or "").lower() == PERMISSIVE:
            # The bypass is in place: the symptom is requests failing, not Auth0 being down.
            return f"still logging {JWKS_SYMPTOM}" if jwks.symptom_lines else None
        seen = jwks_finding(jwks)
        return seen.summary if seen.fault else None
    if scenario is Scenario.INGRESS_503 and snapshot.ingress is not None:
        seen = ingress_finding(snapshot.ingress)
        return seen.summary if seen.fault else None
    if scenario in (Scenario.POD_CRASH, Scenario.HPA_THRASH):
        back = _crashing_again(snapshot.crashes, decision, since)
        if back:
            return f"{decision.namespace}/{target}: crash-looping: {', '.join(back)}"
    if scenario is Scenario.HPA_THRASH and snapshot.hpa is not None and snapshot.hpa.hpa:
        rescales = snapshot.hpa.hpa.rescales
        if since is not None:
            after = [r for r in rescales if r.last_timestamp and r.last_timestamp > since]
            if after:
                return f"the HPA rescaled {sum(r.count for r in after)} time(s) since the fix"
        elif hpa_finding(snapshot.hpa, snapshot.observed_at).fault:
            return hpa_finding(snapshot.hpa, snapshot.observed_at).summary
    if scenario is Scenario.QUEUE_BACKLOG:
        seen = queue_finding(snapshot.queue)
        return seen.summary if seen.fault else None
    return None


def alert_symptom(
    alerts: Sequence[Alert],
    decision: TriageDecision,
    snapshot: TriageSnapshot,
    since: datetime | None,
    env: Environment | None,
) -> str | None:
    """What the cluster still shows of a symptom an alert reports beyond the decision's own:
    each firing alert is looked at as the branch it points at, on the object it names (a
    CeleryHighQueueLength while B restarted crashing workers: is the queue still deep?).
    None when every alert's symptom is gone, or the alert names nothing a probe can check."""
    for alert in alerts:
        scenario = alert_hint(alert)
        if scenario is None or not alert.firing:
            continue
        target = alert_target(alert)
        name = target.deployment or target.named
        if scenario is Scenario.POD_CRASH and target.pod:
            owner = _deployment_of(snapshot.crashes, target.namespace, target.pod)
            name = owner or name
        if (scenario, target.namespace or decision.namespace, name) == (
            decision.scenario,
            decision.namespace,
            decision.target,
        ):
            continue  # the decision's own symptom, already looked at
        if (
            scenario is Scenario.POD_CRASH
            and name is not None
            and not any(s.deployment_name == name for s in snapshot.crashes)
        ):
            continue  # the pod's workload is not one the probes read: nothing to judge
        if scenario is Scenario.QUEUE_BACKLOG and not target.queue:
            continue  # a worker offline (CeleryWorkerDown) reports no queue's depth
        as_decided = TriageDecision(
            scenario=scenario,
            reason=f"alert {alert.name}",
            namespace=target.namespace or decision.namespace,
            target=name,
        )
        still = symptom_present(as_decided, snapshot, since, env)
        if still is not None:
            return f"alert {alert.name or alert.fingerprint} still reports: {still}"
    return None


def _deployment_of(
    crashes: Sequence[PodCrashSnapshot], namespace: str | None, pod: str
) -> str | None:
    for snap in crashes:
        if snap.namespace == namespace and any(p.name == pod for p in snap.pods):
            return snap.deployment_name
    return None


def _crashing_again(
    crashes: Sequence[PodCrashSnapshot], decision: TriageDecision, since: datetime | None
) -> list[str]:
    for snap in crashes:
        if (snap.namespace, snap.deployment_name) != (decision.namespace, decision.target):
            continue
        if since is None:
            return crashing_pods(snap)
        return [p.name for p in snap.pods if crashed_since(p, since)]
    return []
