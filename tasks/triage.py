"""The runbook's triage tree as one pure decision: alerts and a snapshot in, a branch out.

Platform errors (F storage, D auth, E ingress) are checked before workload errors (B several
crashes or a thrashing HPA, A a single crash, C a deep queue), because a platform failure
produces workload symptoms: with Redis down the workers crash too, and restarting them fixes
nothing. Alerts are hints, never proof: a branch is chosen on probed evidence, and an alert that
the evidence does not back escalates with that evidence instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tasks.alerts import Alert, alert_target
from tasks.diagnosis import Action, Scenario, TriageDecision
from tasks.platform_diagnoses import diagnose_ingress, diagnose_jwks, diagnose_stateful
from tasks.settings import Environment
from tasks.snapshots import PodCrashSnapshot, TriageSnapshot
from tasks.workload_diagnoses import (
    diagnose_hpa_thrash,
    is_crash_looping,
    is_thrashing,
)

# Words in an alert's name that point at a branch (lowercase substring match, first wins).
ALERT_HINTS: tuple[tuple[str, Scenario], ...] = (
    ("postgres", Scenario.STATEFUL_FAILOVER),
    ("redis", Scenario.STATEFUL_FAILOVER),
    ("jwks", Scenario.JWKS_OUTAGE),
    ("auth0", Scenario.JWKS_OUTAGE),
    ("ingress", Scenario.INGRESS_503),
    ("endpoint", Scenario.INGRESS_503),
    ("hpa", Scenario.HPA_THRASH),
    ("crashloop", Scenario.POD_CRASH),
    ("queue", Scenario.QUEUE_BACKLOG),
    ("celery", Scenario.QUEUE_BACKLOG),
)


def alert_hint(alert: Alert) -> Scenario | None:
    name = alert.name.lower()
    return next((scenario for word, scenario in ALERT_HINTS if word in name), None)


def _crashing(crashes: Sequence[PodCrashSnapshot]) -> dict[str, list[str]]:
    """Crash-looping pod names by Deployment."""
    found: dict[str, list[str]] = {}
    for snap in crashes:
        names = [c.pod.name for c in snap.crashing if is_crash_looping(c.pod)]
        names += [
            p.name
            for p in snap.pods
            if is_crash_looping(p) and p.name not in names and not snap.crashing
        ]
        if names:
            found[snap.deployment_name] = names
    return found


def diagnose_incident(alerts: Sequence[Alert], snapshot: TriageSnapshot) -> TriageDecision:
    """Which runbook branch this incident is, on evidence; escalate when nothing fits."""
    firing = [a for a in alerts if a.firing]
    hints = [(a, alert_hint(a)) for a in firing]
    hint_lines = tuple(
        f"alert {a.name or a.fingerprint} ({a.fingerprint}) points at "
        + (f"scenario {s.value}" if s else "no scenario")
        for a, s in hints
    )
    crashing = _crashing(snapshot.crashes)
    crash_lines = tuple(f"{d}: crash-looping {', '.join(p)}" for d, p in crashing.items())

    def decided(
        scenario: Scenario,
        reason: str,
        evidence: Sequence[str],
        namespace: str | None = None,
        target: str | None = None,
    ) -> TriageDecision:
        return TriageDecision(
            scenario=scenario,
            reason=reason,
            evidence=(*evidence, *hint_lines),
            namespace=namespace,
            target=target,
        )

    # Platform first.
    if snapshot.stateful is not None:
        found = diagnose_stateful(snapshot.stateful, Environment.DEV)
        if found.action is not Action.NONE:
            explained = (
                (f"explained by the datastore outage, not restarted: {'; '.join(crash_lines)}",)
                if crash_lines
                else ()
            )
            return decided(
                Scenario.STATEFUL_FAILOVER,
                found.summary,
                (*found.evidence, *explained),
                found.namespace,
                found.name or found.selector,
            )
    if snapshot.jwks is not None:
        found = diagnose_jwks(snapshot.jwks)
        if found.action is not Action.NONE:
            return decided(
                Scenario.JWKS_OUTAGE, found.summary, found.evidence, found.namespace, found.name
            )
    if snapshot.ingress is not None:
        found = diagnose_ingress(snapshot.ingress)
        if found.action is not Action.NONE:
            return decided(
                Scenario.INGRESS_503, found.summary, found.evidence, found.namespace, found.name
            )
    # Then workloads.
    hpa = snapshot.hpa
    if hpa is not None and hpa.hpa is not None and is_thrashing(hpa.hpa.rescales, hpa.observed_at):
        found = diagnose_hpa_thrash(hpa)
        return decided(
            Scenario.HPA_THRASH,
            found.summary,
            (*found.evidence, *crash_lines),
            found.namespace,
            found.name,
        )
    several = {d: p for d, p in crashing.items() if len(p) > 1}
    if several:
        deployment = next(iter(several))
        return decided(
            Scenario.HPA_THRASH,
            f"several pods of {deployment} crash-loop: runbook B",
            crash_lines,
            next(s.namespace for s in snapshot.crashes if s.deployment_name == deployment),
            snapshot.hpa.hpa_name if snapshot.hpa is not None else deployment,
        )
    if crashing:
        deployment, pods = next(iter(crashing.items()))
        crash = next(s for s in snapshot.crashes if s.deployment_name == deployment)
        return decided(
            Scenario.POD_CRASH,
            f"one pod of {deployment} crash-loops ({pods[0]}): runbook A",
            crash_lines,
            crash.namespace,
            deployment,
        )
    queue = snapshot.queue
    if queue is not None and queue.depth is not None and queue.depth >= queue.alarm:
        return decided(
            Scenario.QUEUE_BACKLOG,
            f"queue {queue.queue} holds {queue.depth} messages (alarm at {queue.alarm})",
            (f"active tasks: {queue.active_tasks}",),
            queue.namespace,
            queue.deployment_name,
        )
    if firing:
        targets = [alert_target(a) for a in firing]
        named = ", ".join(
            sorted({t.pod or t.deployment or t.service or "" for t in targets} - {""})
        )
        return TriageDecision(
            scenario=None,
            escalate=True,
            reason=(
                f"{len(firing)} alert(s) fire but no branch of the runbook is backed by what the "
                "probes saw: escalating instead of guessing"
                + (f" (alert targets: {named})" if named else "")
            ),
            evidence=(*hint_lines, *_probed(snapshot)),
        )
    return TriageDecision(
        scenario=None,
        reason="no alert fires and the probes found nothing to do",
        evidence=_probed(snapshot),
    )


def _probed(snapshot: TriageSnapshot) -> tuple[str, ...]:
    parts = {
        "stateful": snapshot.stateful,
        "jwks": snapshot.jwks,
        "ingress": snapshot.ingress,
        "hpa": snapshot.hpa,
        "queue": snapshot.queue,
    }
    queue = snapshot.queue
    unread = queue is not None and queue.depth is None
    seen = [
        name
        for name, part in parts.items()
        if part is not None and not (unread and name == "queue")
    ]
    seen += [f"pods of {c.deployment_name}" for c in snapshot.crashes]
    lines = [f"probed and healthy: {', '.join(seen) or 'nothing'}"]
    if queue is not None and unread:
        lines.append(f"queue {queue.queue}: depth unknown ({queue.broker_error or 'no answer'})")
    return tuple(lines)


def diagnose_recurrence(
    decision: TriageDecision, snapshot: TriageSnapshot, since: datetime
) -> str | None:
    """After a verified fix and the hold period: what of the incident is back, or None if the
    fix held. Only the decided scenario and target are looked at (another problem elsewhere is
    another incident); HPA decisions count only after `since`, the verified fix, because the
    lookback still holds the rescales that made the incident."""
    scenario, target = decision.scenario, decision.target
    if scenario is Scenario.STATEFUL_FAILOVER and snapshot.stateful is not None:
        found = diagnose_stateful(snapshot.stateful, Environment.DEV)
        return found.summary if found.action is not Action.NONE else None
    if scenario is Scenario.JWKS_OUTAGE and snapshot.jwks is not None:
        found = diagnose_jwks(snapshot.jwks)
        return found.summary if found.action is not Action.NONE else None
    if scenario is Scenario.INGRESS_503 and snapshot.ingress is not None:
        found = diagnose_ingress(snapshot.ingress)
        return found.summary if found.action is not Action.NONE else None
    if scenario is Scenario.HPA_THRASH and snapshot.hpa is not None:
        hpa = snapshot.hpa.hpa
        after = [
            r
            for r in (hpa.rescales if hpa else ())
            if r.last_timestamp and r.last_timestamp > since
        ]
        if after:
            return f"the HPA rescaled {sum(r.count for r in after)} time(s) since the fix"
        if snapshot.hpa.crashing_pods:
            return f"crash-looping again: {', '.join(snapshot.hpa.crashing_pods)}"
        return None
    if scenario is Scenario.POD_CRASH:
        pods = _crashing(snapshot.crashes).get(target or "", [])
        return f"{target}: crash-looping again: {', '.join(pods)}" if pods else None
    if scenario is Scenario.QUEUE_BACKLOG and snapshot.queue is not None:
        queue = snapshot.queue
        if queue.depth is not None and queue.depth >= queue.alarm:
            return f"queue {queue.queue} holds {queue.depth} messages again (alarm {queue.alarm})"
    return None
