"""The gate's guards, kept in the incident store so they hold across processes and restarts.

    scope ─► lock ─► (already done?) ─► blast radius ─► cooldown, circuit breaker, budget
                                       (one unit of work) ─► kill switch ─► send

- **kill switch**: REMEDIATE_SAFETY__KILL_SWITCH=true, or the Prefect Variable
  `remediate_kill_switch` set to true (no restart needed). A switch that cannot be read counts
  as on: no change is made on an unknown. Read from the Prefect server on every change, last,
  right before the request is sent (`kill_switch`), so a change that waited for the lock stops
  if it was turned on meanwhile; a change about to wait for another run asks it before it waits
  too. The setting is asked first, before anything is read.
- **scope**: only the workloads' namespaces and the configured kinds.
- **lock**: a lease row per owning workload (pod -> ReplicaSet -> Deployment, pod ->
  StatefulSet, a bare pod is its own), so a pod delete and a restart of the pod's Deployment
  exclude each other; a second run waits (bounded), then the gate looks again. A change that
  was sent keeps its lease through its run's verification: until that flow run ends (asked of
  Prefect while another run waits) or the lease expires (`lease_seconds`).
- **cooldown**: the same change to the same target that took effect moments ago (another run
  for the same incident) is not repeated: the record says "already done" and which run did it.
- **circuit breaker**: after N changes of one kind to one target within the window, stop and
  escalate: a fix that needs repeating is not fixing anything.
- **budget**: at most K changes per hour across the cluster, counted and spent under one lock
  (store/safety.py `budget_lock`): a change that passes reserves its slot before it is sent.
  The cooldown, the breaker and the budget read the same audit rows: one query
  (`safety.history`) in the unit of work that spends the budget.
- **blast radius**: a change takes down at most a share of each owning workload's ready pods at
  once (a pod delete, per workload its pods belong to; a scale to fewer replicas),
  rounded up as Kubernetes rounds a maxUnavailable percentage (so one pod of one may go: F's
  restart of a lone store is the runbook's own step, and it is approved where dangerous).

Each answer is a `Verdict`; the gate records them on the audit row and the change record. The
budget and the blast radius may be lifted for one change a human approved (`approved_by`): the
verdict then passes and says so, with the count that was over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.variables import Variable
from sqlmodel import Session

from store import safety
from store.engine import session_for
from store.models import IncidentAction
from store.types import utcnow
from tasks.changes.gate import (
    OVER_LIMIT_GUARDS,
    BeforeWaiting,
    Held,
    Limits,
    TargetBusy,
)
from tasks.changes.models import Change, Disruption, Verdict
from tasks.run_context import current_flow_run
from tasks.settings import Safety

LEASE_POLL_SECONDS = 0.1
HOLDER_LOOK_SECONDS = 1.0  # how often a waiting run asks Prefect whether the holder's run ended
FLOW_RUN = "flow-run:"
_ON = {"true", "on", "yes", "1"}


def lease_holder(key: str) -> str:
    """Who holds a lease: the flow run the change is made in (so its verification and its
    put-back, in the same run, hold it too), else the change itself."""
    flow_run_id, _ = current_flow_run()
    return f"{FLOW_RUN}{flow_run_id}" if flow_run_id else f"change:{key}"


def run_has_ended(holder: str) -> bool:
    """The holder is a flow run that is over (completed, failed, crashed, cancelled, or gone):
    nothing of it is left to verify. Unknown (Prefect unreachable) is not over."""
    if not holder.startswith(FLOW_RUN):
        return False
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(holder[len(FLOW_RUN) :]))
    except ObjectNotFound:
        return True
    except Exception:  # could not tell: the lease stands until it expires
        return False
    return run.state is not None and run.state.is_final()


class StoreGuards:
    def __init__(self, url: str, safety_settings: Safety, scope: tuple[str, ...]) -> None:
        self._url = url
        self._safety = safety_settings
        self._scope = scope

    def admit(self, change: Change) -> list[Verdict]:
        """The scope, and the switch's setting when it is on (no request is made: the Variable
        is read last, right before the request, by `kill_switch`)."""
        scope = self._in_scope(change)
        return [self._switch_setting(), scope] if self._safety.kill_switch else [scope]

    def _switch_setting(self) -> Verdict:
        detail = "REMEDIATE_SAFETY__KILL_SWITCH is on: no change is made"
        return Verdict(guard="kill-switch", passed=False, detail=detail)

    def kill_switch(self) -> Verdict:
        """The setting, then the Prefect Variable, read from the server every time (through the
        flow run's client, kept alive for the run: one request). A read that fails is "on"."""

        def verdict(passed: bool, detail: str) -> Verdict:
            return Verdict(guard="kill-switch", passed=passed, detail=detail)

        if self._safety.kill_switch:
            return self._switch_setting()
        name = self._safety.kill_switch_variable
        try:
            value = Variable.get(name, default=None)
        except Exception as exc:  # unknown is not "off"
            return verdict(False, f"Prefect Variable {name} could not be read ({exc!r})")
        if str(value).strip().lower() in _ON:
            return verdict(False, f"Prefect Variable {name} is {value!r}: no change is made")
        return verdict(True, "off")

    def _in_scope(self, change: Change) -> Verdict:
        target, kinds = change.target, self._safety.kinds
        if target.namespace not in self._scope:
            detail = f"namespace {target.namespace} is outside {', '.join(self._scope)}"
            return Verdict(guard="scope", passed=False, detail=detail)
        if target.kind not in kinds:
            detail = f"kind {target.kind} is not one of {', '.join(kinds)}"
            return Verdict(guard="scope", passed=False, detail=detail)
        return Verdict(guard="scope", passed=True, detail=f"{target.key} is in scope")

    @contextmanager
    def hold(
        self,
        change: Change,
        key: str,
        workloads: tuple[str, ...],
        before_waiting: BeforeWaiting | None = None,
    ) -> Iterator[Held]:
        holder, started = lease_holder(key), time.monotonic()
        deadline = started + self._safety.lock_timeout_seconds
        next_look = started + LEASE_POLL_SECONDS
        asked = False
        while not self._take(workloads, holder):
            if not asked and before_waiting is not None:
                asked = True
                before_waiting()  # may refuse the change: nothing is held yet
            now = time.monotonic()
            if now > deadline:
                raise TargetBusy(
                    f"{', '.join(workloads)} stayed locked by another run for "
                    f"{self._safety.lock_timeout_seconds:.0f} s",
                    operation="gate",
                )
            if now >= next_look:
                next_look = now + HOLDER_LOOK_SECONDS
                if self._end_finished_holders(workloads, holder):
                    continue
            time.sleep(LEASE_POLL_SECONDS)
        waited = time.monotonic() - started
        detail = f"{', '.join(workloads)} held" + (
            f" after waiting {waited:.1f} s for another run" if waited > 0.05 else ""
        )
        held = Held(verdict=Verdict(guard="lock", passed=True, detail=detail))
        try:
            yield held
        finally:
            with session_for(self._url, durable=False) as session:
                self._let_go(session, held, workloads, holder)

    def _let_go(
        self, session: Session, held: Held, workloads: tuple[str, ...], holder: str
    ) -> None:
        """Release the lease, or (a change sent in a flow run) keep it through the run's
        verification: until the run ends or `lease_seconds` from now."""
        if held.keep and holder.startswith(FLOW_RUN):
            seconds = self._safety.lease_seconds
            safety.extend_leases(session, target_keys=workloads, holder=holder, seconds=seconds)
        else:
            safety.release_leases(session, target_keys=workloads, holder=holder)

    def _take(self, workloads: tuple[str, ...], holder: str) -> bool:
        # Not fsynced on its own (SQLite): the audit row's commit that follows before anything
        # is sent fsyncs it too (the WAL is one sequence). A lease only keeps live processes
        # apart; after power loss none is left, and a release lost then comes back as a dead
        # run's lease, freed once its flow run is seen ended or it expires.
        with session_for(self._url, durable=False) as session:
            return safety.take_leases(
                session,
                target_keys=workloads,
                holder=holder,
                seconds=self._safety.lease_seconds,
            )

    def _end_finished_holders(self, workloads: tuple[str, ...], holder: str) -> bool:
        """Drop the leases of holders whose flow run has ended; True if any was dropped."""
        with session_for(self._url, read_only=True) as session:
            holders = set(safety.lease_holders(session, target_keys=workloads).values())
        ended = [h for h in holders - {holder} if run_has_ended(h)]
        for other in ended:
            with session_for(self._url, durable=False) as session:
                safety.end_leases_of(session, holder=other)
        return bool(ended)

    def limits(
        self,
        change: Change,
        disruptions: Sequence[Disruption],
        approved_by: str = "",
        *,
        key: str = "",
        dry_run: bool = True,
        cooldown: bool = True,
    ) -> Limits:
        s, now = self._safety, utcnow()
        cooldown_since = (
            now - timedelta(seconds=s.cooldown_seconds)
            if cooldown and s.cooldown_seconds > 0
            else None
        )
        with session_for(self._url) as session:
            # The count and the spend in one unit of work under one lock across processes:
            # a second gate counts this change's reserved slot. One query reads what the
            # cooldown, the breaker and the budget count.
            safety.budget_lock(session)
            seen = safety.history(
                session,
                action=change.action.value,
                target_key=change.target.key,
                summary=change.describe(),
                budget_since=now - timedelta(hours=1),
                breaker_since=now - timedelta(seconds=s.breaker_window_seconds),
                cooldown_since=cooldown_since,
            )
            if seen.last_same is not None:
                return self._cooled_down(seen.last_same, now)
            verdicts = self._limits(change, disruptions, seen)
            if approved_by:
                verdicts = [_approved_over(v, approved_by) for v in verdicts]
            if key and not dry_run and all(v.passed for v in verdicts):
                safety.reserve(session, change_key=key)
        return Limits(verdicts=verdicts)

    def _cooled_down(self, last: IncidentAction, now: datetime) -> Limits:
        took_effect = last.finished_at or now
        age = (now - took_effect).total_seconds()
        by = last.flow_run_name or last.flow_run_id or "another run"
        detail = (
            f"the same change took effect {age:.0f} s ago (action {last.id}, {by}): "
            f"not repeated within the {self._safety.cooldown_seconds:.0f} s cooldown"
        )
        verdict = Verdict(guard="cooldown", passed=True, detail=detail)
        return Limits(verdicts=[verdict], done_at=took_effect)

    def _limits(
        self, change: Change, disruptions: Sequence[Disruption], seen: safety.History
    ) -> list[Verdict]:
        s = self._safety
        window = f"{s.breaker_window_seconds / 60:.0f} min"
        breaker = Verdict(
            guard="circuit-breaker",
            passed=seen.same_target < s.max_changes_per_target,
            detail=f"{seen.same_target} {change.action.value} of {change.target.key} in the "
            f"last {window} (at most {s.max_changes_per_target}; then a human decides)",
        )
        budget = Verdict(
            guard="budget",
            passed=seen.budget < s.max_changes_per_hour,
            detail=f"{seen.budget} change(s) across the cluster in the last hour, those being "
            f"sent now included (at most {s.max_changes_per_hour})",
        )
        return [breaker, budget, *(self._blast_radius(d) for d in disruptions)]

    def _blast_radius(self, disruption: Disruption) -> Verdict:
        share = self._safety.max_ready_share
        allowed = math.ceil(share * disruption.ready)
        detail = (
            f"takes down {disruption.taken} of {disruption.workload}'s {disruption.ready} ready "
            f"pod(s) at once (at most {allowed}: {share:.0%}, rounded up)"
        )
        return Verdict(guard="blast-radius", passed=disruption.taken <= allowed, detail=detail)


def _approved_over(verdict: Verdict, approver: str) -> Verdict:
    if verdict.passed or verdict.guard not in OVER_LIMIT_GUARDS:
        return verdict
    detail = f"{verdict.detail}; over the limit, approved by {approver}"
    return Verdict(guard=verdict.guard, passed=True, detail=detail)
