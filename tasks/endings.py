"""How every scenario flow ends, once: nothing to do, escalated, planned, mitigated or failed,
then published as the run's `<flow>-changes` and `<flow>-outcome` artifacts.

A flow body then reads like its runbook section: probe, diagnose, `no_action` or the change,
then `settle` with the verification that proves it.
"""

from __future__ import annotations

from collections.abc import Callable

from tasks.adapters.errors import AdapterError
from tasks.changes.models import ChangeRecord, ChangeStatus
from tasks.changes.mutations import put_back
from tasks.models.diagnosis import Action, Diagnosis
from tasks.models.outcome import Outcome, Verification
from tasks.records.artifacts import publish_changes, publish_outcome
from tasks.retries import NotYetHealthy
from tasks.verifies import VerifyFailed


def published(outcome: Outcome, flow: str) -> Outcome:
    publish_changes(outcome, f"{flow}-changes")
    publish_outcome(outcome, f"{flow}-outcome")
    return outcome


def no_action(diagnosis: Diagnosis, flow: str) -> Outcome:
    """The diagnosis asks for no change: nothing to do, or a human must decide (escalated)."""
    if diagnosis.action is Action.NONE:
        return published(Outcome.nothing_to_do(diagnosis), flow)
    return published(Outcome.escalated(diagnosis), flow)


def settle(
    diagnosis: Diagnosis,
    changes: tuple[ChangeRecord, ...],
    *,
    dry_run: bool,
    flow: str,
    check: str,
    verify: Callable[[], tuple[Verification, ...]],
    did_not_fix: str,
) -> Outcome:
    """The change was made (or planned): a dry run is the plan; otherwise `verify` proves the
    fix, or the outcome is failed, saying `did_not_fix` and why, and what the changes
    overwrote is put back (a restart has nothing to put back)."""
    if dry_run:
        return published(Outcome.planned(diagnosis, *changes), flow)
    try:
        outcome = Outcome.mitigated(diagnosis, changes, verify())
    except (NotYetHealthy, VerifyFailed) as exc:
        failed = Verification(check=check, passed=False, detail=str(exc))
        put, note = put_back_all(changes, f"{did_not_fix}: {exc}")
        outcome = Outcome.failed(
            diagnosis, f"{did_not_fix}: {exc}{note}", (*changes, *put), (failed,)
        )
    return published(outcome, flow)


def put_back_all(
    changes: tuple[ChangeRecord, ...], why: str
) -> tuple[tuple[ChangeRecord, ...], str]:
    """Put back what each applied change overwrote; the records, and a note for the message."""
    put: list[ChangeRecord] = []
    missed: list[str] = []
    for change in changes:
        if change.status is not ChangeStatus.APPLIED or change.revert is None:
            continue
        try:
            put.append(put_back(change.revert, dry_run=False, reason=f"put back: {why}"))
        except AdapterError as exc:  # the guards or the cluster said no: a human must
            missed.append(f"{change.summary} NOT put back: {exc}")
    note = "".join(f"; put back: {p.summary}" for p in put) + "".join(f"; {m}" for m in missed)
    return tuple(put), note
