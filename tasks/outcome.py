"""What a scenario flow returns: one typed Outcome that also renders as the run's story.

status is one of nothing_to_do / planned / mitigated / escalated / failed; `changes` are the
gate's records (plans on a dry run), `verification` what proved the fix. The constructors are
named after the flow's exits so a flow body ends with a sentence: `Outcome.mitigated(...)`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from tasks.changes import ChangeRecord
from tasks.diagnosis import Diagnosis, Scenario


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


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: Scenario | None
    status: OutcomeStatus
    diagnosis: Diagnosis | None = None
    changes: tuple[ChangeRecord, ...] = ()
    verification: tuple[Verification, ...] = ()
    message: str = ""

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
        return "\n".join(lines).rstrip() + "\n"


def changes_table(changes: tuple[ChangeRecord, ...]) -> list[str]:
    rows = ["| action | target | status | change | before | after | revert |"]
    rows.append("| --- | --- | --- | --- | --- | --- | --- |")
    for c in changes:
        revert = f"{c.revert.action} → {c.revert.value}" if c.revert is not None else "—"
        rows.append(
            f"| {c.action} | `{c.target.key}` | {c.status} | `{c.summary}` | {c.before} | "
            f"{c.after} | {revert} |"
        )
    return rows
