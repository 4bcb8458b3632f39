"""The one mutation gate: every change the flows make to a cluster passes through `apply_change`.

What it guarantees today (DESIGN.md, "Safety of every action"):

1. **dry_run** — the change is sent with `dryRun=All`: the API server validates and admits it
   without persisting, and the answer becomes the concrete plan (`ChangeRecord`, status
   `planned`, the would-be facts in `after`).
2. **One actor per workload** — an in-process lock per target (`Deployment/ns/name`), so two
   runs in this process never act on the same object at once; the guards' lease (6) does the
   same across processes, keyed on the owning workloads (`Change.workloads`: a pod delete and a
   restart of the pod's Deployment exclude each other) and held from the change through the
   run's verification.
3. **Exactly once under retries and across processes** — the facts before are read once per
   change key and kept (in this process, and on the audit row for a retry in another); every
   attempt first asks the change whether the target already is as wanted (replicas already N,
   the env var already set, the HPA window already 300, a restartedAt newer than the first
   attempt). A Prefect retry after a transient failure therefore sends the write again only if
   the earlier attempt did not take effect, and a write whose answer was lost is recognised and
   reported as applied instead of being repeated. The same change left in progress by a run
   that died (its audit row begun, never completed) is settled from what the cluster shows
   before anything is sent: applied if it took effect (and not sent again), failed if not.
4. **Exact revert** — the record keeps what the target had before (`ChangeRecord.revert`).

5. **Audit rows before and after** — given an `Audit` (the flows' is
   `tasks.changes.audit.StoreAudit`, the incident store), every attempt is written down before
   anything is sent, with the facts before, and completed with the result (or the error)
   after. If the row cannot be written, nothing is sent.

6. **Guards** — given `Guards` (the flows' are `tasks.changes.guards.StoreGuards`), in this
   order: the scope (and the kill-switch setting) before anything is read; the lock on the
   owning workloads across processes; then, when something would be sent, the blast radius
   (the share of each owning workload's ready pods taken down at once), and in one unit of
   work the cooldown (the same change made moments ago by another run is not repeated), the
   circuit breaker and the hourly budget (counted and spent under one lock across processes);
   and last, after every wait and every other guard, right before the request is sent, the kill
   switch (its Prefect Variable, read from the server on every change). A change that must
   wait for another run (the in-process lock or the lease) asks the switch before it waits
   too, so it does not wait only to be refused. A guard that says no stops the change
   (`GuardRefused`, status `refused`) and its verdict is on the audit row and the record; a
   dry run is never stopped: its plan shows every verdict.
   The budget and the blast radius are limits a human may lift for one change
   (`approved_by`, given by `flows.approvals.approved_over_limits`): the gate still asks them,
   and their verdicts say who approved going over.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from tasks.adapters.errors import PermanentError, TransientError
from tasks.changes.models import (
    Change,
    ChangeRecord,
    ChangeStatus,
    Disruption,
    Fact,
    Reach,
    Revert,
    Target,
    Verdict,
)

LOCK_TIMEOUT_SECONDS = 120.0
# The guards a human may approve going over, for one change; the others always stop it (the
# circuit breaker above all: a fix that needs repeating is for a human to rethink, not approve).
OVER_LIMIT_GUARDS = frozenset({"budget", "blast-radius"})
_LEDGER_SIZE = 1024


@dataclass(frozen=True)
class Earlier:
    """A change key's audit row as an earlier attempt (maybe another process's) left it."""

    key: str
    before: dict[str, Fact]
    since: datetime  # when its first attempt began
    attempts: int  # attempts that may have sent it (the row was begun and not completed)
    by: str = ""  # its run


class Audit(Protocol):
    """Where the gate writes its audit rows (one per change key, re-opened by each attempt)."""

    def begin(
        self, change: Change, key: str, dry_run: bool, before: dict[str, Fact]
    ) -> Earlier | None:
        """Write the row (or re-open it: its facts before stay), and answer with what an
        earlier attempt under this key left on it: its facts before outlive the process."""
        ...

    def finish(self, record: ChangeRecord) -> None: ...

    def fail(self, key: str, error: str) -> None: ...

    def orphans(self, change: Change, key: str) -> list[Earlier]:
        """Rows of this very change that other change keys left in progress (their runs died
        between the request and the row's completion)."""
        ...

    def settle(
        self,
        orphan: Earlier,
        *,
        took_effect: bool,
        after: dict[str, Fact],
        revert: Revert | None,
        note: str,
    ) -> None:
        """Complete an orphan's row: applied (the cluster shows it took effect) or failed."""
        ...


@dataclass
class Held:
    """The owning workloads' lock as the gate holds it. `keep`, set once the change was sent,
    holds it on after the gate returns: through the run's verification, until that run ends or
    the lease expires."""

    verdict: Verdict
    keep: bool = False


@dataclass(frozen=True)
class Limits:
    """The history guards' answer (`Guards.limits`): the cooldown found this very change made
    moments ago (`done_at`, when it took effect; `verdicts` is then the cooldown's alone), or
    the circuit breaker's, the budget's and the blast radius's verdicts."""

    verdicts: list[Verdict]
    done_at: datetime | None = None


# Called by the lock and the lease before they wait for another run (the gate asks the kill
# switch there, so a change it stops does not wait only to be refused).
BeforeWaiting = Callable[[], None]


class Guards(Protocol):
    """What may stop a change, asked by the gate in a fixed order (see the module's doc)."""

    def admit(self, change: Change) -> list[Verdict]:
        """Scope, and the kill switch's setting (no request): asked before anything is read."""
        ...

    def hold(
        self,
        change: Change,
        key: str,
        workloads: tuple[str, ...],
        before_waiting: BeforeWaiting | None = None,
    ) -> AbstractContextManager[Held]:
        """The owning workloads' lock across processes, held while the change is decided and
        sent (and after, when the gate sets `keep`). `before_waiting` is called once before
        it waits for another holder (it may raise: then nothing is held)."""
        ...

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
        """Cooldown (when `cooldown`: the same change already took effect moments ago, another
        run's, and when: not repeated), then circuit breaker, budget and blast radius (one
        verdict per disrupted workload), in one unit of work. With `approved_by`, the budget
        and blast radius pass over their limit, saying who. When every verdict passes and it
        is no dry run, the change's slot of the budget is taken (under the same lock as the
        count)."""
        ...

    def kill_switch(self) -> Verdict:
        """The kill switch, read from its source (never a cached answer): asked last, right
        before the request is sent, and before any wait for another run."""
        ...


class TargetBusy(TransientError):
    """Another run holds the target's lock; trying later is the right answer."""


class GuardRefused(PermanentError):
    """A guard said no: nothing was sent. `record` (status `refused`) carries every verdict."""

    def __init__(self, record: ChangeRecord, afterwards: str = "") -> None:
        said_no = next(v for v in record.verdicts if not v.passed)
        super().__init__(
            f"{record.summary} refused by the {said_no.guard} guard: {said_no.detail}"
            + (f"; {afterwards}" if afterwards else ""),
            operation="gate",
        )
        self.record, self.afterwards = record, afterwards

    @property
    def over_limits_only(self) -> bool:
        """Only limits a human may approve going over said no (see OVER_LIMIT_GUARDS)."""
        return all(v.guard in OVER_LIMIT_GUARDS for v in self.record.verdicts if not v.passed)

    def __reduce__(self) -> tuple[type[GuardRefused], tuple[ChangeRecord, str]]:
        return (
            GuardRefused,
            (self.record, self.afterwards),
        )  # Prefect may pickle a failed task's exception


@dataclass
class _Attempt:
    before: dict[str, Fact]
    since: datetime
    tries: int = 0
    record: ChangeRecord | None = None


_registry_lock = threading.Lock()
_target_locks: dict[str, threading.Lock] = {}
_ledger: OrderedDict[str, _Attempt] = OrderedDict()


@contextmanager
def target_lock(
    target: Target,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    before_waiting: BeforeWaiting | None = None,
) -> Iterator[None]:
    """Hold the in-process lock of one target; TargetBusy when it stays taken for `timeout`.
    `before_waiting` is called once if it is taken now (it may raise: then nothing is held)."""
    with _registry_lock:
        lock = _target_locks.setdefault(target.key, threading.Lock())
    if not lock.acquire(blocking=False):
        if before_waiting is not None:
            before_waiting()
        if not lock.acquire(timeout=timeout):
            raise TargetBusy(f"{target.key} is being changed by another run", operation="gate")
    try:
        yield
    finally:
        lock.release()


def _remember(key: str, attempt: _Attempt) -> None:
    _ledger[key] = attempt
    _ledger.move_to_end(key)
    while len(_ledger) > _LEDGER_SIZE:
        _ledger.popitem(last=False)


def forget(key: str | None = None) -> None:
    """Drop the ledger (tests), or one change key."""
    with _registry_lock:
        if key is None:
            _ledger.clear()
        else:
            for suffix in (":dry-run", ":apply"):
                _ledger.pop(key + suffix, None)


def apply_change(
    change: Change,
    *,
    key: str,
    dry_run: bool,
    reach: Reach,
    audit: Audit | None = None,
    guards: Guards | None = None,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    approved_by: str = "",
) -> ChangeRecord:
    """Plan (dry run) or apply `change` once; `key` identifies it across retries.

    Use the same key for every attempt of one intent (a Prefect task run id does exactly that)
    and a new key for a new intent. `approved_by` names the human who approved this change
    going over its limits (OVER_LIMIT_GUARDS).
    """
    ledger_key = f"{key}:{'dry-run' if dry_run else 'apply'}"
    verdicts = guards.admit(change) if guards is not None else []
    if not dry_run and not all(v.passed for v in verdicts):
        _refuse(change, key, verdicts, audit)

    def before_waiting() -> None:
        # About to wait for another run (up to lock_timeout): a switch that is on now stops the
        # change here instead of after the wait. The read right before the request stays.
        if guards is not None and not dry_run:
            switch = guards.kill_switch()
            if not switch.passed:
                _refuse(change, key, [switch, *verdicts], audit)

    with (
        target_lock(change.target, lock_timeout, before_waiting),
        _held(guards, change, key, reach, before_waiting) as held,
    ):
        verdicts += [held.verdict] if held is not None else []
        with _registry_lock:
            attempt = _ledger.get(ledger_key)
        if attempt is not None and attempt.record is not None:
            return attempt.record
        now_facts = change.observe(reach)
        fresh = attempt is None
        if attempt is None:
            attempt = _Attempt(before=now_facts, since=datetime.now(UTC))
        # The row is written (or re-opened) before anything is sent; an earlier attempt under
        # this key in another process left its facts before there, and they win.
        earlier = audit.begin(change, key, dry_run, attempt.before) if audit is not None else None
        if fresh:
            if earlier is not None:
                attempt = _Attempt(
                    before=earlier.before, since=earlier.since, tries=earlier.attempts
                )
            with _registry_lock:
                _remember(ledger_key, attempt)
        try:
            record = _decide(
                change,
                key,
                attempt,
                now_facts,
                reach,
                dry_run,
                guards,
                verdicts,
                approved_by,
                audit if guards is not None else None,  # orphans are settled under the lease
            )
        except Exception as exc:
            if audit is not None:
                audit.fail(key, str(exc))
            raise
        if audit is not None:
            audit.finish(record)
        if record.status is ChangeStatus.REFUSED:
            raise GuardRefused(record)
        attempt.record = record
        if held is not None and record.status is ChangeStatus.APPLIED and not dry_run:
            held.keep = True  # through the run's verification
        return record


def _held(
    guards: Guards | None, change: Change, key: str, reach: Reach, before_waiting: BeforeWaiting
) -> AbstractContextManager[Held | None]:
    if guards is None:
        return nullcontext()
    return guards.hold(change, key, change.workloads(reach), before_waiting)


def _settle_orphans(
    change: Change, key: str, audit: Audit, now_facts: dict[str, Fact]
) -> Earlier | None:
    """Settle this change's rows that dead runs left in progress, from what the cluster shows;
    the one that took effect (if any): the change is then not sent again."""
    done: Earlier | None = None
    for orphan in audit.orphans(change, key):
        took_effect = change.is_done(now_facts, orphan.before, orphan.since)
        if took_effect:
            note = (
                "settled after its run died: the cluster shows it took effect "
                f"(found by change {key}, which did not send it again)"
            )
        else:
            note = (
                "settled after its run died: it never took effect "
                f"(found by change {key}, which makes it instead)"
            )
        revert = change.revert_for(orphan.before) if took_effect else None
        audit.settle(orphan, took_effect=took_effect, after=now_facts, revert=revert, note=note)
        done = done or (orphan if took_effect else None)
    return done


def _refuse(change: Change, key: str, verdicts: list[Verdict], audit: Audit | None) -> None:
    """A guard said no before anything was read: write it down, then stop."""
    record = ChangeRecord(
        key=key,
        action=change.action,
        target=change.target,
        status=ChangeStatus.REFUSED,
        dry_run=False,
        summary=change.describe(),
        at=datetime.now(UTC),
        verdicts=tuple(verdicts),
    )
    if audit is not None:
        audit.begin(change, key, False, {})
        audit.finish(record)
    raise GuardRefused(record)


def _decide(
    change: Change,
    key: str,
    attempt: _Attempt,
    now_facts: dict[str, Fact],
    reach: Reach,
    dry_run: bool,
    guards: Guards | None,
    verdicts: list[Verdict],
    approved_by: str,
    audit: Audit | None = None,
) -> ChangeRecord:
    def record(
        status: ChangeStatus,
        summary: str,
        after: dict[str, Fact],
        note: str = "",
        done_earlier_at: datetime | None = None,
    ) -> ChangeRecord:
        changed = status is ChangeStatus.APPLIED
        return ChangeRecord(
            key=key,
            action=change.action,
            target=change.target,
            status=status,
            dry_run=dry_run,
            summary=summary,
            before=attempt.before,
            after=after,
            revert=change.revert_for(attempt.before) if changed else None,
            note=note,
            at=datetime.now(UTC),
            verdicts=tuple(verdicts),
            done_earlier_at=done_earlier_at,
        )

    decided = _unsent(
        change, key, attempt, now_facts, reach, dry_run, guards, verdicts, approved_by, audit
    )
    if guards is not None:
        # Last, after every wait and every other guard, right before the request: a switch
        # turned on while this change waited (or was decided) stops it. Read from its source
        # every time; it comes first among the verdicts.
        switch = guards.kill_switch()
        verdicts[:] = [switch, *(v for v in verdicts if v.guard != switch.guard)]
        if not switch.passed and not dry_run:
            return record(ChangeStatus.REFUSED, change.describe(), now_facts)
    if decided is not None:
        status, summary, note, done_earlier_at = decided
        return record(status, summary, now_facts, note, done_earlier_at)
    attempt.tries += 1
    started = time.monotonic()
    performed = change.perform(reach, attempt.before, dry_run=dry_run)
    took = f"server answered in {time.monotonic() - started:.2f}s"
    status = ChangeStatus.PLANNED if dry_run else ChangeStatus.APPLIED
    note = "; ".join(n for n in (performed.note, took) if n)
    return record(status, change.describe(), performed.after, note)


# What the gate decided without sending anything: status, summary, note, when it took effect.
_Unsent = tuple[ChangeStatus, str, str, datetime | None]


def _unsent(
    change: Change,
    key: str,
    attempt: _Attempt,
    now_facts: dict[str, Fact],
    reach: Reach,
    dry_run: bool,
    guards: Guards | None,
    verdicts: list[Verdict],
    approved_by: str,
    audit: Audit | None,
) -> _Unsent | None:
    """Every answer but the kill switch's: the change already in effect (or made by a run that
    died, or moments ago by another run), or refused by a limit; None when it is to be sent.
    Adds the guards' verdicts to `verdicts`."""
    if change.is_done(now_facts, attempt.before, attempt.since):
        if attempt.tries == 0 or dry_run:
            summary = f"already in effect, nothing sent: {change.describe()}"
            return ChangeStatus.ALREADY_DONE, summary, "", None
        # An earlier attempt took effect but its answer never arrived: do not repeat it.
        note = f"took effect on attempt {attempt.tries} (its answer was lost); not repeated"
        return ChangeStatus.APPLIED, change.describe(), note, None
    if audit is not None and not dry_run and attempt.tries == 0:
        orphan = _settle_orphans(change, key, audit, now_facts)
        if orphan is not None:
            by = orphan.by or "another run"
            summary = f"done by a run that died, not repeated: {change.describe()}"
            note = f"{by} sent it and died before completing its audit row; settled as applied"
            return ChangeStatus.ALREADY_DONE, summary, note, orphan.since
    if guards is None:
        return None
    disruptions = change.disruption(reach, attempt.before)
    limits = guards.limits(
        change,
        disruptions,
        approved_by,
        key=key,
        dry_run=dry_run,
        cooldown=attempt.tries == 0,
    )
    verdicts += limits.verdicts
    if limits.done_at is not None:
        summary = f"done moments ago, not repeated: {change.describe()}"
        return ChangeStatus.ALREADY_DONE, summary, limits.verdicts[-1].detail, limits.done_at
    if not dry_run and not all(v.passed for v in verdicts):
        return ChangeStatus.REFUSED, change.describe(), "", None
    return None
