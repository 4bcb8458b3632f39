"""The gate's guards, kept in the incident store so they hold across processes and restarts.

    kill switch ─► scope ─► lock ─► (already done?) ─► cooldown ─► circuit breaker ─► budget
                                                                         ─► blast radius

- **kill switch**: REMEDIATE_SAFETY__KILL_SWITCH=true, or the Prefect Variable
  `remediate_kill_switch` set to true (no restart needed). A switch that cannot be read counts
  as on: no change is made on an unknown.
- **scope**: only the workloads' namespaces and the configured kinds.
- **lock**: a lease row per target; a second run waits (bounded), then the gate looks again.
- **cooldown**: the same change to the same target that took effect moments ago (another run
  for the same incident) is not repeated: the record says "already done" and which run did it.
- **circuit breaker**: after N changes of one kind to one target within the window, stop and
  escalate: a fix that needs repeating is not fixing anything.
- **budget**: at most K changes per hour across the cluster.
- **blast radius**: a change takes down at most a share of a workload's ready pods at once,
  rounded up as Kubernetes rounds a maxUnavailable percentage (so one pod of one may go: F's
  restart of a lone store is the runbook's own step, and it is approved where dangerous).

Each answer is a `Verdict`; the gate records them on the audit row and the change record. The
budget and the blast radius may be lifted for one change a human approved (`approved_by`): the
verdict then passes and says so, with the count that was over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from prefect.variables import Variable

from store import safety
from store.engine import session_for
from store.types import utcnow
from tasks.changes.gate import OVER_LIMIT_GUARDS, TargetBusy
from tasks.changes.models import Change, Disruption, Verdict
from tasks.settings import Safety

LEASE_POLL_SECONDS = 0.1
_ON = {"true", "on", "yes", "1"}


class StoreGuards:
    def __init__(self, url: str, safety_settings: Safety, scope: tuple[str, ...]) -> None:
        self._url = url
        self._safety = safety_settings
        self._scope = scope

    def admit(self, change: Change) -> list[Verdict]:
        return [self._kill_switch(), self._in_scope(change)]

    def _kill_switch(self) -> Verdict:
        def verdict(passed: bool, detail: str) -> Verdict:
            return Verdict(guard="kill-switch", passed=passed, detail=detail)

        if self._safety.kill_switch:
            return verdict(False, "REMEDIATE_SAFETY__KILL_SWITCH is on: no change is made")
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
    def hold(self, change: Change, holder: str) -> Iterator[Verdict]:
        key, started = change.target.key, time.monotonic()
        deadline = started + self._safety.lock_timeout_seconds
        while not self._take(key, holder):
            if time.monotonic() > deadline:
                raise TargetBusy(
                    f"{key} stayed locked by another run for "
                    f"{self._safety.lock_timeout_seconds:.0f} s",
                    operation="gate",
                )
            time.sleep(LEASE_POLL_SECONDS)
        waited = time.monotonic() - started
        detail = f"{key} held" + (
            f" after waiting {waited:.1f} s for another run" if waited > 0.05 else ""
        )
        try:
            yield Verdict(guard="lock", passed=True, detail=detail)
        finally:
            with session_for(self._url) as session:
                safety.release_lease(session, target_key=key, holder=holder)

    def _take(self, key: str, holder: str) -> bool:
        with session_for(self._url) as session:
            return safety.take_lease(
                session, target_key=key, holder=holder, seconds=self._safety.lease_seconds
            )

    def recently_done(self, change: Change) -> tuple[Verdict, datetime] | None:
        cooldown = self._safety.cooldown_seconds
        if cooldown <= 0:
            return None
        now = utcnow()
        with session_for(self._url) as session:
            last = safety.last_applied_since(
                session,
                now - timedelta(seconds=cooldown),
                action=change.action.value,
                target_key=change.target.key,
                summary=change.describe(),
            )
        if last is None:
            return None
        took_effect = last.finished_at or now
        age = (now - took_effect).total_seconds()
        by = last.flow_run_name or last.flow_run_id or "another run"
        detail = (
            f"the same change took effect {age:.0f} s ago (action {last.id}, {by}): "
            f"not repeated within the {cooldown:.0f} s cooldown"
        )
        return Verdict(guard="cooldown", passed=True, detail=detail), took_effect

    def limits(
        self, change: Change, disruption: Disruption | None, approved_by: str = ""
    ) -> list[Verdict]:
        verdicts = self._limits(change, disruption)
        if not approved_by:
            return verdicts
        return [_approved_over(v, approved_by) for v in verdicts]

    def _limits(self, change: Change, disruption: Disruption | None) -> list[Verdict]:
        s, now = self._safety, utcnow()
        with session_for(self._url) as session:
            same = safety.count_applied_since(
                session,
                now - timedelta(seconds=s.breaker_window_seconds),
                action=change.action.value,
                target_key=change.target.key,
            )
            hour = safety.count_applied_since(session, now - timedelta(hours=1))
        window = f"{s.breaker_window_seconds / 60:.0f} min"
        breaker = Verdict(
            guard="circuit-breaker",
            passed=same < s.max_changes_per_target,
            detail=f"{same} {change.action.value} of {change.target.key} in the last "
            f"{window} (at most {s.max_changes_per_target}; then a human decides)",
        )
        budget = Verdict(
            guard="budget",
            passed=hour < s.max_changes_per_hour,
            detail=f"{hour} change(s) across the cluster in the last hour "
            f"(at most {s.max_changes_per_hour})",
        )
        return [breaker, budget, *self._blast_radius(disruption)]

    def _blast_radius(self, disruption: Disruption | None) -> list[Verdict]:
        if disruption is None:
            return []
        share = self._safety.max_ready_share
        allowed = math.ceil(share * disruption.ready)
        detail = (
            f"takes down {disruption.taken} of {disruption.workload}'s {disruption.ready} ready "
            f"pod(s) at once (at most {allowed}: {share:.0%}, rounded up)"
        )
        return [Verdict(guard="blast-radius", passed=disruption.taken <= allowed, detail=detail)]


def _approved_over(verdict: Verdict, approver: str) -> Verdict:
    if verdict.passed or verdict.guard not in OVER_LIMIT_GUARDS:
        return verdict
    detail = f"{verdict.detail}; over the limit, approved by {approver}"
    return Verdict(guard=verdict.guard, passed=True, detail=detail)
