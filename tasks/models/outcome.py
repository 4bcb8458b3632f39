"""What a scenario flow returns: one typed Outcome that also renders as the run's story.

status is one of nothing_to_do / planned / mitigated / escalated / failed; `changes` are the
gate's records (plans on a dry run), `verification` what proved the fix. The constructors are
named after the flow's exits so a flow body ends with a sentence: `Outcome.mitigated(...)`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from tasks.changes.models import ChangeRecord, Revert
from tasks.models.diagnosis import Diagnosis, Scenario


class OutcomeStatus(StrEnum):
    NOTHING_TO_DO = "nothing_to_do"
    PLANNED = "planned"
    MITIGATED = "mitigated"
    ESCALATED = "escalated"
    FAILED = "failed"


class Verification(BaseModel):
    model_config = ConfigDict(frozen=True)

    check: str  # the verify task's name
    passed: bool
    detail: str


class Priority(StrEnum):
    P1 = "P1"  # the runbook's "schedule the revert as a P1 task"
    P2 = "P2"


class FollowUp(BaseModel):
    """Work the incident leaves behind: which flow does it, with which parameters, and whether
    a run of it is really scheduled (`scheduled_flow_run_id`) or only recorded here."""

    model_config = ConfigDict(frozen=True)

    key: str  # names it in the incident store, across the runs that create and close it
    priority: Priority
    title: str
    flow: str  # the Prefect flow name that does it
    parameters: dict[str, str | int | float | bool | None]
    condition: str = ""  # what must hold before it may act
    scheduled_flow_run_id: str | None = None
    scheduled_for: datetime | None = None
    note: str = ""


class HardRuleBypass(BaseModel):
    """A runbook hard rule this run set aside: who approved it and how to undo it exactly."""

    model_config = ConfigDict(frozen=True)

    rule: str
    change_key: str
    approved_by: str
    approval_comment: str = ""
    revert: Revert


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: Scenario | None
    status: OutcomeStatus
    diagnosis: Diagnosis | None = None
    changes: tuple[ChangeRecord, ...] = ()
    verification: tuple[Verification, ...] = ()
    message: str = ""
    bypass: HardRuleBypass | None = None
    follow_ups: tuple[FollowUp, ...] = ()

    @classmethod
    def nothing_to_do(cls, diagnosis: Diagnosis) -> Outcome:
        return cls(
            scenario=diagnosis.scenario,
            status=OutcomeStatus.NOTHING_TO_DO,
            diagnosis=diagnosis,
            message=diagnosis.summary,
        )

    @classmethod
    def escalated(cls, diagnosis: Diagnosis, reason: str = "", *changes: ChangeRecord) -> Outcome:
        return cls(
            scenario=diagnosis.scenario,
            status=OutcomeStatus.ESCALATED,
            diagnosis=diagnosis,
            changes=changes,
            message=reason or diagnosis.summary,
        )

    @classmethod
    def planned(cls, diagnosis: Diagnosis, *changes: ChangeRecord) -> Outcome:
        return cls(
            scenario=diagnosis.scenario,
            status=OutcomeStatus.PLANNED,
            diagnosis=diagnosis,
            changes=changes,
            message="dry run: the plan below was validated by the server; nothing changed",
        )

    @classmethod
    def mitigated(
        cls,
        diagnosis: Diagnosis,
        changes: tuple[ChangeRecord, ...],
        verification: tuple[Verification, ...],
    ) -> Outcome:
        return cls(
            scenario=diagnosis.scenario,
            status=OutcomeStatus.MITIGATED,
            diagnosis=diagnosis,
            changes=changes,
            verification=verification,
            message=diagnosis.summary,
        )

    @classmethod
    def failed(
        cls,
        diagnosis: Diagnosis,
        reason: str,
        changes: tuple[ChangeRecord, ...] = (),
        verification: tuple[Verification, ...] = (),
    ) -> Outcome:
        return cls(
            scenario=diagnosis.scenario,
            status=OutcomeStatus.FAILED,
            diagnosis=diagnosis,
            changes=changes,
            verification=verification,
            message=reason,
        )

    @property
    def changed_anything(self) -> bool:
        return any(c.changed_anything for c in self.changes)

    def to_markdown(self) -> str:
        title = (
            f"Scenario {self.scenario.value} — {self.scenario.runbook_title}"
            if self.scenario
            else "No scenario"
        )
        lines = [f"# {title}: **{self.status.value}**", "", self.message, ""]
        if self.diagnosis is not None:
            lines += ["## Diagnosis", "", self.diagnosis.to_markdown()]
        if self.changes:
            lines += ["## Changes", "", *changes_table(self.changes), ""]
        if self.verification:
            lines += ["## Verification", "", "| check | passed | detail |", "| --- | --- | --- |"]
            lines += [
                f"| {v.check} | {'yes' if v.passed else 'no'} | {v.detail} |"
                for v in self.verification
            ]
        if self.bypass is not None:
            b = self.bypass
            lines += [
                "",
                "## Hard rule bypassed",
                "",
                f"- rule: {b.rule}",
                f"- approved by: {b.approved_by}"
                + (f" ({b.approval_comment})" if b.approval_comment else ""),
                f"- revert: {b.revert.action} `{b.revert.target.key}` "
                f"{b.revert.variable or ''} → {_shown(b.revert.value)}",
            ]
        if self.follow_ups:
            lines += ["", "## Follow-ups", ""]
            for f in self.follow_ups:
                when = (
                    f"scheduled as flow run `{f.scheduled_flow_run_id}` for "
                    f"{f.scheduled_for:%Y-%m-%d %H:%M:%S} UTC"
                    if f.scheduled_flow_run_id and f.scheduled_for
                    else "NOT scheduled: recorded only"
                )
                lines.append(f"- **{f.priority}** {f.title} (flow `{f.flow}`; {when})")
                if f.condition:
                    lines.append(f"  - when: {f.condition}")
                if f.note:
                    lines.append(f"  - note: {f.note}")
        return "\n".join(lines).rstrip() + "\n"


def _shown(value: object) -> str:
    return "(unset)" if value is None else str(value)


def changes_table(changes: tuple[ChangeRecord, ...]) -> list[str]:
    rows = ["| action | target | status | change | before | after | revert |"]
    rows.append("| --- | --- | --- | --- | --- | --- | --- |")
    for c in changes:
        revert = f"{c.revert.action} → {c.revert.value}" if c.revert is not None else "—"
        rows.append(
            f"| {c.action} | `{c.target.key}` | {c.status} | `{c.summary}` | {c.before} | "
            f"{c.after} | {revert} |"
        )
    for c in changes:
        if c.verdicts:
            rows += ["", f"Guards on `{c.summary}`:"]
            rows += [
                f"- {'pass' if v.passed else '**refused**'} {v.guard}: {v.detail}"
                for v in c.verdicts
            ]
    return rows
