"""The gate's audit rows in the incident store: written before a change is sent, completed after.

`StoreAudit` is what `tasks.changes.mutations` hands the gate. It links each row to the flow run
that made the change and to the incident the run works for (`tasks.run_context`). If the store
cannot take the row before the change, the change is refused: an unaudited change to
production is exactly what the store is there to prevent.

The rows also carry the gate's exactly-once bookkeeping across processes: a retry in another
process reads its facts before from its own row (`begin` answers with what an earlier attempt
left there, in the same unit of work that re-opens it), and a run finds the same change
left in progress by a run that died (`orphans`) and completes that row from what the cluster
shows (`settle`) before deciding whether to send anything.
"""

from __future__ import annotations

from typing import Any

from store import actions
from store.engine import StoreError, session_for
from store.models import ActionStatus, IncidentAction
from tasks.adapters.errors import PermanentError
from tasks.changes.gate import Earlier
from tasks.changes.models import Change, ChangeRecord, ChangeStatus, Fact, Revert
from tasks.run_context import current_flow_run, current_incident

_STATUS = {
    ChangeStatus.PLANNED: ActionStatus.PLANNED,
    ChangeStatus.APPLIED: ActionStatus.APPLIED,
    ChangeStatus.ALREADY_DONE: ActionStatus.ALREADY_DONE,
    ChangeStatus.REFUSED: ActionStatus.REFUSED,
}


class AuditUnavailable(PermanentError):
    """The audit row could not be written, so the change was not sent."""


class StoreAudit:
    def __init__(self, url: str) -> None:
        self._url = url

    def begin(
        self, change: Change, key: str, dry_run: bool, before: dict[str, Fact]
    ) -> Earlier | None:
        flow_run_id, flow_run_name = current_flow_run()
        start = actions.ActionStart(
            change_key=key,
            action=change.action.value,
            target_key=change.target.key,
            dry_run=dry_run,
            summary=change.describe(),
            reason=change.reason,
            before=dict(before),
            incident_id=current_incident(),
            flow_run_id=flow_run_id,
            flow_run_name=flow_run_name,
        )
        try:
            with session_for(self._url) as session:
                earlier = _recalled(actions.action_by_key(session, change_key=key), dry_run)
                actions.begin_action(session, start=start)
        except StoreError as exc:
            raise AuditUnavailable(
                f"refusing to change {change.target.key}: the incident store did not take the "
                f"audit row ({exc.__class__.__name__}: {exc})",
                operation="audit",
            ) from exc
        return earlier

    def finish(self, record: ChangeRecord) -> None:
        revert: dict[str, Any] | None = (
            record.revert.model_dump(mode="json") if record.revert is not None else None
        )
        with session_for(self._url) as session:
            actions.finish_action(
                session,
                change_key=record.key,
                status=_STATUS[record.status],
                after=dict(record.after),
                revert=revert,
                note=record.note,
                at=record.at,
                verdicts=[v.model_dump(mode="json") for v in record.verdicts],
            )

    def fail(self, key: str, error: str) -> None:
        with session_for(self._url) as session:
            actions.fail_action(session, change_key=key, error=error)

    def orphans(self, change: Change, key: str) -> list[Earlier]:
        with session_for(self._url, read_only=True) as session:
            rows = actions.orphans(
                session,
                action=change.action.value,
                target_key=change.target.key,
                summary=change.describe(),
                change_key=key,
            )
        return [_earlier(row, attempts=row.attempts) for row in rows]

    def settle(
        self,
        orphan: Earlier,
        *,
        took_effect: bool,
        after: dict[str, Fact],
        revert: Revert | None,
        note: str,
    ) -> None:
        with session_for(self._url) as session:
            actions.settle_orphan(
                session,
                change_key=orphan.key,
                took_effect=took_effect,
                after=dict(after) if took_effect else {},
                revert=revert.model_dump(mode="json") if revert is not None else None,
                note=note,
            )


def _recalled(row: IncidentAction | None, dry_run: bool) -> Earlier | None:
    """The row as an earlier attempt (maybe another process's) left it, before this one
    re-opens it; None when there was none."""
    if row is None or row.dry_run != dry_run or not row.attempts:
        return None
    # Left in progress (its process died) or failed: that attempt may have sent it.
    unsure = row.status in (ActionStatus.IN_PROGRESS, ActionStatus.FAILED)
    return _earlier(row, attempts=row.attempts if unsure else 0)


def _earlier(row: IncidentAction, *, attempts: int) -> Earlier:
    return Earlier(
        key=row.change_key,
        before=dict(row.before),
        since=row.started_at,
        attempts=attempts,
        by=row.flow_run_name or row.flow_run_id or "",
    )
