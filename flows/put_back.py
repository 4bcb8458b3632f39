"""Put back what one automated change overwrote: `remediate revert ACTION_ID`.

Every change's audit row keeps the exact state it overwrote (its `revert`: the replica count,
the HPA window, the env var's value). This flow writes that back through the same gate as any
change, so the kill switch, the scope, the lock and the limits apply, and the revert gets an
audit row of its own. A restart or a pod delete has nothing to put back, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import flow

from flows.runs import named, tell_change
from store.engine import session_for
from store.models import ActionStatus, IncidentAction
from tasks.changes.models import ChangeRecord, Revert
from tasks.changes.mutations import put_back
from tasks.settings import Settings


class NothingToPutBack(ValueError):
    """The action is unknown, was not applied, or overwrote nothing that can be written back."""


def revert_of(action_id: int) -> tuple[Revert, str]:
    """The action's revert and its summary, or NothingToPutBack saying why not."""
    with session_for(Settings().store.url.get_secret_value()) as session:
        row = session.get(IncidentAction, action_id)
    if row is None:
        raise NothingToPutBack(f"no action {action_id} in the incident store")
    if row.dry_run or row.status is not ActionStatus.APPLIED:
        what = "a dry run" if row.dry_run else str(row.status)
        raise NothingToPutBack(f"action {action_id} ({row.summary}) was {what}: nothing changed")
    if row.revert is None:
        raise NothingToPutBack(f"action {action_id} ({row.summary}) has nothing to put back")
    return Revert.model_validate(row.revert), row.summary


def _subject(p: Mapping[str, Any]) -> str:
    return f"action {p.get('action_id')}"


@flow(name="put-back", flow_run_name=named("put-back", _subject))
def put_back_action(action_id: int, dry_run: bool = True) -> ChangeRecord:
    """Write back the state one change overwrote, through the gate.

    Args:
        action_id: the change's audit row (`remediate incidents show ID` lists them)
        dry_run: plan only (a server-side dry run); untick to change the cluster
    """
    revert, summary = revert_of(action_id)
    record = put_back(revert, dry_run=dry_run, reason=f"revert of action {action_id}: {summary}")
    tell_change(record)
    return record
