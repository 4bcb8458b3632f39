"""Pure decisions for the runbook's workload branch (A, B, C): snapshot in, Diagnosis out.

No I/O and no clock: every rule is one row of a parametrised table test.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tasks.adapters.cluster import Rescale
from tasks.diagnoses.crashes import is_crash_looping
from tasks.models.diagnosis import Action, Diagnosis, Scenario
from tasks.models.snapshots import HpaThrashSnapshot, PodCrashSnapshot, QueueSnapshot
from tasks.settings import DEFAULT_QUEUE_DEPTH_ALARM

# A: a restart that did not help twice will not help a third time.
MAX_RESTARTS_PER_INCIDENT = 2
LOG_EVIDENCE_LINES = 5

# B: rescales in this window, alternating between sizes this often, are thrashing.
THRASH_LOOKBACK = timedelta(minutes=10)
THRASH_MIN_RESCALES = 4
HPA_DAMPING_WINDOW_SECONDS = 300
# B: after the window is widened, this long without a rescale counts as stable.
HPA_QUIET_PERIOD = timedelta(seconds=60)

# C: the runbook scales workers to 8. The alarm is the default; a snapshot carries its own.
QUEUE_DEPTH_ALARM = DEFAULT_QUEUE_DEPTH_ALARM
WORKER_REPLICAS_TARGET = 8


def _tail(text: str | None, lines: int = LOG_EVIDENCE_LINES) -> str:
    if not text:
        return "(no previous log)"
    return " | ".join(text.strip().splitlines()[-lines:])


def _pdb_allows_restart(snapshot: PodCrashSnapshot) -> tuple[bool, str]:
    """A rolling restart replaces the crashing pod first, so it never lowers the healthy count
    below what is healthy now; it is safe when the PDB is satisfied now (or absent)."""
    pdb = snapshot.pdb
    if pdb is None:
        return True, "no PodDisruptionBudget selects the Deployment"
    facts = (
        f"PDB {pdb.name}: {pdb.current_healthy} healthy, {pdb.desired_healthy} desired, "
        f"{pdb.disruptions_allowed} disruption(s) allowed"
    )
    if pdb.disruptions_allowed >= 1 or pdb.current_healthy >= pdb.desired_healthy:
        return True, facts
    return False, facts


def diagnose_pod_crash(snapshot: PodCrashSnapshot, *, several: bool = False) -> Diagnosis:
    """Runbook A: one crashing pod is restarted by a rolling restart; several are runbook B,
    unless B itself asks (`several`: B found the HPA calm and no runaway task, and falls back
    on A's inspection and restart for each crashing pod, under A's guards)."""
    ns, name = snapshot.namespace, snapshot.deployment_name
    where = {"namespace": ns, "name": name}
    crashing = [c for c in snapshot.crashing if is_crash_looping(c.pod, snapshot.observed_at)]
    if snapshot.deployment is None:
        return Diagnosis(
            scenario=Scenario.POD_CRASH,
            action=Action.ESCALATE,
            summary=f"deployment {ns}/{name} does not exist",
            **where,
        )
    if not crashing:
        return Diagnosis(
            scenario=Scenario.POD_CRASH,
            action=Action.NONE,
            summary="no pod is crash-looping",
            evidence=(f"{len(snapshot.pods)} pod(s) of {name}, none in CrashLoopBackOff",),
            **where,
        )
    evidence = []
    for c in crashing:
        term = c.pod.last_termination
        exit_text = f"exit {term.exit_code} ({term.reason})" if term else "no termination record"
        evidence.append(
            f"pod {c.pod.name}: {c.pod.status}, {c.pod.restarts} restarts, last {exit_text}"
        )
        evidence.append(f"pod {c.pod.name} previous log: {_tail(c.previous_log)}")
    if len(crashing) > 1 and not several:
        return Diagnosis(
            scenario=Scenario.HPA_THRASH,
            action=Action.REROUTE,
            summary=f"{len(crashing)} pods crash-loop: runbook B (HPA thrash), not a single crash",
            evidence=tuple(evidence),
            **where,
        )
    if snapshot.restarts_already_made >= MAX_RESTARTS_PER_INCIDENT:
        return Diagnosis(
            scenario=Scenario.POD_CRASH,
            action=Action.ESCALATE,
            summary=(
                f"already restarted {snapshot.restarts_already_made} times and the pod still "
                "crashes: a restart does not fix this"
            ),
            evidence=tuple(evidence),
            **where,
        )
    if snapshot.deployment.paused:
        return Diagnosis(
            scenario=Scenario.POD_CRASH,
            action=Action.ESCALATE,
            summary="the Deployment's rollout is paused: a human is mid-change",
            evidence=tuple(evidence),
            **where,
        )
    allowed, pdb_fact = _pdb_allows_restart(snapshot)
    evidence.append(pdb_fact)
    if not allowed:
        return Diagnosis(
            scenario=Scenario.POD_CRASH,
            action=Action.ESCALATE,
            summary="the PodDisruptionBudget is already violated: a restart could take it down",
            evidence=tuple(evidence),
            **where,
        )
    which = "one pod crash-loops" if len(crashing) == 1 else f"{len(crashing)} pods crash-loop"
    return Diagnosis(
        scenario=Scenario.POD_CRASH,
        action=Action.RESTART_DEPLOYMENT,
        summary=f"{which}: rolling restart of deployment/{name}",
        evidence=tuple(evidence),
        **where,
    )


def recent_rescales(rescales: tuple[Rescale, ...], now: datetime) -> tuple[Rescale, ...]:
    since = now - THRASH_LOOKBACK
    return tuple(r for r in rescales if r.last_timestamp is not None and r.last_timestamp >= since)


def is_thrashing(rescales: tuple[Rescale, ...], now: datetime) -> bool:
    """At least two sizes and THRASH_MIN_RESCALES rescales (aggregated counts) in the lookback."""
    recent = recent_rescales(rescales, now)
    sizes = {r.new_size for r in recent}
    return len(sizes) >= 2 and sum(r.count for r in recent) >= THRASH_MIN_RESCALES


def runaway_tasks(lines: tuple[str, ...]) -> tuple[str, ...]:
    """FAILED lines, and tasks that started without finishing (the runaway suspects)."""
    failed = [line for line in lines if "FAILED" in line]
    started = [line for line in lines if "started" in line]
    finished_text = " ".join(line for line in lines if "finished" in line)
    unfinished = [
        line for line in started if not any(word in finished_text for word in _task_ids(line))
    ]
    return tuple([*failed, *unfinished][:LOG_EVIDENCE_LINES])


def _task_ids(line: str) -> list[str]:
    """Tokens that look like a task id (long, with digits) so "finished <id>" can be matched."""
    return [
        t.strip("[]():,") for t in line.split() if len(t) >= 8 and any(ch.isdigit() for ch in t)
    ]


def diagnose_hpa_thrash(
    snapshot: HpaThrashSnapshot, quiet: timedelta = HPA_QUIET_PERIOD
) -> Diagnosis:
    """Runbook B: a flapping HPA gets a 300 s scale-up stabilization window, once. With the
    window in place already and no rescale for the quiet period, it was fixed (by an earlier
    run, say): the rescales still in the lookback are history, not a reason to escalate."""
    where = {"namespace": snapshot.namespace, "name": snapshot.hpa_name}
    hpa = snapshot.hpa
    if hpa is None:
        return Diagnosis(
            scenario=Scenario.HPA_THRASH,
            action=Action.ESCALATE,
            summary=f"HPA {snapshot.namespace}/{snapshot.hpa_name} does not exist",
            **where,
        )
    recent = recent_rescales(hpa.rescales, snapshot.observed_at)
    evidence = [
        f"rescale to {r.new_size} x{r.count} (last {r.last_timestamp:%H:%M:%S}): {r.reason}"
        for r in recent
        if r.last_timestamp is not None
    ]
    evidence += [f"worker log: {line}" for line in runaway_tasks(snapshot.worker_task_lines)]
    if snapshot.crashing_pods:
        evidence.append(f"crash-looping pods: {', '.join(snapshot.crashing_pods)}")
    up = hpa.behavior.scale_up if hpa.behavior is not None else None
    window = up.stabilization_window_seconds if up is not None else None
    evidence.append(
        f"scaleUp.stabilizationWindowSeconds is {window if window is not None else 'unset'}"
    )
    if not is_thrashing(hpa.rescales, snapshot.observed_at):
        return Diagnosis(
            scenario=Scenario.HPA_THRASH,
            action=Action.NONE,
            summary="the HPA is not thrashing",
            evidence=tuple(evidence),
            **where,
        )
    last = max((r.last_timestamp for r in recent if r.last_timestamp), default=None)
    widened = window is not None and window >= HPA_DAMPING_WINDOW_SECONDS
    if widened and last is not None and snapshot.observed_at - last >= quiet:
        return Diagnosis(
            scenario=Scenario.HPA_THRASH,
            action=Action.NONE,
            summary=(
                f"the scale-up window is {window} s already and the HPA has not rescaled since "
                f"{last:%H:%M:%S} ({quiet.total_seconds():g} s quiet): mitigated"
            ),
            evidence=tuple(evidence),
            **where,
        )
    if widened:
        return Diagnosis(
            scenario=Scenario.HPA_THRASH,
            action=Action.ESCALATE,
            summary=(
                f"the HPA thrashes with a {window} s window already: widening it again will not "
                "help; find the runaway task"
            ),
            evidence=tuple(evidence),
            **where,
        )
    return Diagnosis(
        scenario=Scenario.HPA_THRASH,
        action=Action.WIDEN_HPA_WINDOW,
        summary=(
            f"the HPA thrashes: widen scaleUp.stabilizationWindowSeconds to "
            f"{HPA_DAMPING_WINDOW_SECONDS}"
        ),
        evidence=tuple(evidence),
        window_seconds=HPA_DAMPING_WINDOW_SECONDS,
        **where,
    )


def diagnose_several_crashes(hpa: HpaThrashSnapshot, crashes: PodCrashSnapshot) -> Diagnosis:
    """Runbook B when several pods crash-loop and the HPA is calm: its inspection of the worker
    log for a runaway task first (a runaway task is a human's to stop, and widening a calm HPA
    changes nothing), then A's inspection of each crashing pod and A's rolling restart under
    A's guards. Never the HPA patch."""
    found = diagnose_pod_crash(crashes, several=True)
    runaway = runaway_tasks(hpa.worker_task_lines)
    evidence = (
        f"HPA {hpa.hpa_name}: not thrashing",
        *found.evidence,
        *[f"worker log: {line}" for line in runaway],
    )
    if runaway and found.action is Action.RESTART_DEPLOYMENT:
        return found.model_copy(
            update={
                "scenario": Scenario.HPA_THRASH,
                "action": Action.ESCALATE,
                "summary": (
                    f"several pods of {crashes.deployment_name} crash-loop and the worker log "
                    "shows a runaway task: stop it (a restart would be killed again, and the "
                    "HPA is not flapping, so its window is not the fix)"
                ),
                "evidence": evidence,
            }
        )
    return found.model_copy(update={"scenario": Scenario.HPA_THRASH, "evidence": evidence})


def diagnose_queue_backlog(snapshot: QueueSnapshot) -> Diagnosis:
    """Runbook C: a deep queue gets 8 workers; at 8 already, a human must find the cause."""
    where = {"namespace": snapshot.namespace, "name": snapshot.deployment_name}
    if snapshot.depth is None or snapshot.workers is None:
        missing = "queue depth" if snapshot.depth is None else "worker Deployment"
        return Diagnosis(
            scenario=Scenario.QUEUE_BACKLOG,
            action=Action.ESCALATE,
            summary=f"cannot read the {missing}",
            evidence=(f"broker: {snapshot.broker_error}",) if snapshot.broker_error else (),
            **where,
        )
    replicas = snapshot.workers.replicas if snapshot.workers.replicas is not None else 1
    active = "no reply" if snapshot.active_tasks is None else str(snapshot.active_tasks)
    evidence = (
        f"queue {snapshot.queue}: {snapshot.depth} message(s) waiting (alarm at {snapshot.alarm})",
        f"active tasks (celery inspect active): {active}",
        f"{snapshot.deployment_name}: {replicas} replica(s), "
        f"{snapshot.workers.ready_replicas} ready",
    )
    if snapshot.depth < snapshot.alarm:
        return Diagnosis(
            scenario=Scenario.QUEUE_BACKLOG,
            action=Action.NONE,
            summary="the queue is below the alarm threshold",
            evidence=evidence,
            **where,
        )
    if replicas >= WORKER_REPLICAS_TARGET:
        return Diagnosis(
            scenario=Scenario.QUEUE_BACKLOG,
            action=Action.ESCALATE,
            summary=(
                f"the queue is deep with {replicas} workers already (the runbook's cap is "
                f"{WORKER_REPLICAS_TARGET})"
            ),
            evidence=evidence,
            **where,
        )
    return Diagnosis(
        scenario=Scenario.QUEUE_BACKLOG,
        action=Action.SCALE_WORKERS,
        summary=f"scale {snapshot.deployment_name} from {replicas} to {WORKER_REPLICAS_TARGET}",
        evidence=evidence,
        replicas=WORKER_REPLICAS_TARGET,
        **where,
    )
