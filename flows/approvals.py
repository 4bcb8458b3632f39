"""A human's approval before a dangerous change: the run pauses with the plan, the evidence and
every guard's verdict in its form (`pause_flow_run(wait_for_input=...)`), until one of:

- a human answers in the Prefect UI (approve or refuse, with a name that is recorded);
- the pause expires: the answer is no, nothing changes;
- the incident's alerts all resolve first: nobody needs to approve, the answer is no.

The last two resume the run themselves (a watcher thread, from the store's alert states and
the clock), so the run always leaves its pause through Prefect's own resume, never through a
timed-out Paused state. An approval given after the alerts resolved is refused as well: it
answered a question that no longer stands. The change itself then goes through the gate, whose
guards are asked again at that moment.

`approved_over_limits` asks the same question for any change the budget or the blast radius
refused (the limits a human may lift for one change): on yes the verb is called again with the
approver's name, and the gate asks every guard again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from pydantic import Field

from flows.runs import tell
from store.engine import session_for
from store.incidents import all_alerts_resolved
from tasks.changes.gate import GuardRefused
from tasks.changes.models import ChangeRecord
from tasks.run_context import current_incident
from tasks.settings import Settings

# The run's own pause lasts a little longer than the watcher's deadline: the watcher's resume
# is what ends an expired pause.
PAUSE_GRACE_SECONDS = 30
EXPIRED_BY = "nobody (the pause expired)"
RESOLVED_BY = "Alertmanager (the incident's alerts resolved)"


class ChangeApproval(RunInput):
    """The form an operator fills in to allow (or refuse) one dangerous change."""

    approved: bool = False
    approver: str = Field(min_length=1, description="who takes responsibility for the change")
    comment: str = ""


def approval_text(title: str, plan: ChangeRecord, evidence: Sequence[str]) -> str:
    """The form's description: what would be done, why, and what every guard said."""
    lines = [f"## {title}", "", "The plan, validated by the API server:", "", f"`{plan.summary}`"]
    if plan.verdicts:
        lines += ["", "Guards (asked again when you approve):", ""]
        lines += [
            f"- {'pass' if v.passed else '**would refuse**'} {v.guard}: {v.detail}"
            for v in plan.verdicts
        ]
    if evidence:
        lines += ["", "Evidence:", "", *(f"    {line}" for line in evidence[-20:])]
    return "\n".join(lines)


def ask_approval(
    title: str,
    plan: ChangeRecord,
    evidence: Sequence[str],
    *,
    timeout_seconds: int,
    poll_seconds: int,
    key: str,
) -> ChangeApproval:
    """Pause the run for a human's answer; a refusal that names why on expiry or resolution."""
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None, "call from a flow run"
    incident = current_incident()
    form = ChangeApproval.with_initial_data(
        description=approval_text(title, plan, evidence), approved=False
    )
    tell("pausing for a human to approve (up to %d s): %s", timeout_seconds, plan.summary)
    watcher = _Watcher(context.flow_run.id, incident, timeout_seconds, poll_seconds)
    watcher.start()
    try:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=timeout_seconds + PAUSE_GRACE_SECONDS,
            poll_interval=poll_seconds,
            key=key,
        )
    except FlowPauseTimeout:
        answer = ChangeApproval(approver=EXPIRED_BY, comment=f"no answer in {timeout_seconds} s")
    finally:
        watcher.stop()
    if answer.approved and incident is not None and _resolved(incident):
        answer = ChangeApproval(
            approver=answer.approver,
            comment=f"approved by {answer.approver} after the incident's alerts resolved: refused",
        )
    tell(
        "approval: %s by %s%s",
        "given" if answer.approved else "refused",
        answer.approver,
        f" ({answer.comment})" if answer.comment else "",
    )
    return answer


def approved_over_limits(
    verb: Callable[..., ChangeRecord], *args: Any, evidence: Sequence[str] = (), **kwargs: Any
) -> ChangeRecord:
    """Call a mutation verb; when only its budget or blast radius refused it, ask a human (the
    form shows the refused plan and every verdict) and, on yes, call it again as approved.

    A "no" (or an expired pause, or resolved alerts) raises the refusal: nothing was changed.
    """
    try:
        return verb(*args, **kwargs)
    except GuardRefused as refused:
        if not refused.over_limits_only:
            raise
        safety = Settings().safety
        answer = ask_approval(
            "Approve a change over its limits?",
            refused.record,
            evidence,
            timeout_seconds=safety.approval_timeout_seconds,
            poll_seconds=safety.approval_poll_seconds,
            key=f"approve-over-limits-{refused.record.key}",
        )
        if not answer.approved:
            why = f"going over was not approved: {answer.approver}" + (
                f" ({answer.comment})" if answer.comment else ""
            )
            raise GuardRefused(refused.record, why) from refused
        return verb(*args, **kwargs, approved_by=answer.approver)


def _resolved(incident_id: int) -> bool:
    with session_for(Settings().store.url.get_secret_value()) as session:
        return all_alerts_resolved(session, incident_id=incident_id)


class _Watcher:
    """Ends the pause with a "no" when it expires or the incident's alerts resolve."""

    def __init__(
        self, flow_run_id: UUID, incident: int | None, timeout_seconds: int, poll_seconds: int
    ) -> None:
        self._run, self._incident = flow_run_id, incident
        self._deadline = time.monotonic() + timeout_seconds
        self._timeout, self._poll = timeout_seconds, poll_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="approval-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stopped.wait(self._poll):
            if self._incident is not None and self._resolved():
                return self._answer_no(RESOLVED_BY, "resolved before anyone approved")
            if time.monotonic() >= self._deadline:
                return self._answer_no(EXPIRED_BY, f"no answer in {self._timeout} s")

    def _resolved(self) -> bool:
        assert self._incident is not None
        try:
            return _resolved(self._incident)
        except Exception:  # the store is away: not known to be resolved, keep waiting
            return False

    def _answer_no(self, approver: str, comment: str) -> None:
        # A human may have answered first, or Prefect is away: the pause's own timeout ends it.
        with contextlib.suppress(Exception):
            resume_flow_run(
                self._run, run_input={"approved": False, "approver": approver, "comment": comment}
            )
