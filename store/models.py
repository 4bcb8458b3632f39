"""The incident store's tables: one incident and its parts.

    incident ──< incident_alert      the alerts that fired, by fingerprint
             ──< incident_decision   each triage decision (scenario, reason, evidence)
             ──< incident_action     each change: the state before and after, its flow run
             ──< incident_follow_up  what the incident leaves behind (P1 revert, regression test)
             ──< incident_event      the timeline: every transition and step, timestamped

The store sits below `tasks/`: it knows nothing of Prefect, Kubernetes or the runbook's types,
so scenarios are their letters and targets their keys. Schema changes go through Alembic
(`store/migrations/`); `tests/store/test_migrations.py` checks the migrations build exactly
these tables.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy import Enum as SqlEnum
from sqlmodel import Field, SQLModel

from store.types import UtcDateTime, utcnow


class IncidentStatus(StrEnum):
    OPEN = "open"  # evidence arrived, not triaged yet
    TRIAGED = "triaged"  # a branch (or none) was decided; a dry run stops here
    MITIGATING = "mitigating"  # a scenario flow is changing the cluster
    VERIFIED = "verified"  # the fix was proven; waiting for it to hold and its alerts to resolve
    ESCALATED = "escalated"  # a human must act; the evidence says why
    RESOLVED = "resolved"  # the symptom is gone on the cluster and every alert resolved

    @property
    def is_open(self) -> bool:
        return self is not IncidentStatus.RESOLVED


class EventKind(StrEnum):
    TRANSITION = "transition"  # the incident moved to `status`
    ALERT = "alert"  # an alert joined, fired again or resolved
    ACTION = "action"  # a change was planned or applied
    FOLLOW_UP = "follow-up"  # a follow-up was created, scheduled or closed
    REPORT = "report"  # the post-incident report was written
    MERGED = "merged"  # another incident turned out to be this one
    RELAPSE = "relapse"  # it came back after it resolved: reopened
    NOTE = "note"


class ActionStatus(StrEnum):
    IN_PROGRESS = "in-progress"  # written before the change is sent: a crash leaves this behind
    PLANNED = "planned"
    APPLIED = "applied"
    ALREADY_DONE = "already-done"
    FAILED = "failed"
    REFUSED = "refused"  # a guard stopped it before anything was sent (its verdicts say which)


class FollowUpStatus(StrEnum):
    OPEN = "open"
    SCHEDULED = "scheduled"  # a Prefect flow run will do it
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_closed(self) -> bool:
        return self in (FollowUpStatus.DONE, FollowUpStatus.CANCELLED)


def _enum(kind: type[StrEnum], default: StrEnum | None, *, index: bool = False) -> Any:
    """A VARCHAR holding the enum's value (not a PostgreSQL ENUM type, so a new member needs no
    type migration), read back as the enum member."""
    column_type = SqlEnum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )
    return Field(default=default, sa_type=column_type, index=index)


def _json() -> Any:
    return Field(default_factory=dict, sa_type=JSON)


def _json_list() -> Any:
    return Field(default_factory=list, sa_type=JSON)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UtcDateTime, index=index)
    return Field(default_factory=utcnow, sa_type=UtcDateTime, index=index)


def _incident_fk(*, nullable: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("incident.id", ondelete="CASCADE"),
            nullable=nullable,
            index=True,
        ),
    )


class Incident(SQLModel, table=True):
    """One incident, from first evidence to resolution.

    `open_key` is the target's key while the incident is open and NULL once it resolves: a
    unique column, so the database itself refuses a second open incident for one target (two
    triage runs racing to open it) while resolved ones may repeat.
    """

    __tablename__ = "incident"
    # Ids are never reused: merging deletes an incident, and its id names its triage run's
    # idempotency key (`triage-incident-<id>`) and its Prefect tag; SQLite would otherwise hand
    # the deleted id to the next incident, whose triage run would then never be created.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    title: str
    status: IncidentStatus = _enum(IncidentStatus, IncidentStatus.OPEN, index=True)
    scenario: str | None = Field(default=None, index=True)  # the runbook letter, A to F
    target_key: str = Field(index=True)  # what it is about, e.g. alphaswarm/alphaswarm-core
    open_key: str | None = Field(default=None, unique=True)
    namespace: str | None = None
    target: str | None = None
    trigger: str = "alertmanager"  # alertmanager, sweep, cli
    environment: str = "unknown"  # REMEDIATE_ENVIRONMENT unset: never assumed dev
    started_at: datetime = _when(nullable=False)  # the earliest evidence (an alert's startsAt)
    opened_at: datetime = _when(nullable=False, index=True)  # when this tool first saw it
    triaged_at: datetime | None = _when()
    mitigating_at: datetime | None = _when()
    verified_at: datetime | None = _when()
    escalated_at: datetime | None = _when()
    resolved_at: datetime | None = _when()
    # The fix held on the cluster for the hold period; a resolved notification may now resolve
    # it. Cleared when it relapses.
    held_at: datetime | None = _when()
    relapses: int = 0  # times it came back after it resolved (each one reopened it)
    root_cause: str = ""  # the diagnosis that explains it
    evidence: list[str] = _json_list()
    resolution: str = ""  # how it ended
    automated: bool = False  # a flow's change was verified: mitigated without a human fixing it
    report_path: str | None = None
    triage_flow_run_id: str | None = None


class IncidentAlert(SQLModel, table=True):
    """An alert of the incident; Alertmanager resends the same fingerprint on every repeat."""

    __tablename__ = "incident_alert"
    __table_args__ = (UniqueConstraint("incident_id", "fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = _incident_fk()
    fingerprint: str = Field(index=True)
    alertname: str = ""
    status: str = "firing"
    labels: dict[str, str] = _json()
    annotations: dict[str, str] = _json()
    starts_at: datetime = _when(nullable=False)
    ends_at: datetime | None = _when()
    generator_url: str = ""
    group_key: str = Field(default="", index=True)
    first_received_at: datetime = _when(nullable=False)
    last_received_at: datetime = _when(nullable=False)
    received_count: int = 1


class IncidentDecision(SQLModel, table=True):
    """What triage decided and on which evidence (one row per triage run)."""

    __tablename__ = "incident_decision"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = _incident_fk()
    at: datetime = _when(nullable=False)
    scenario: str | None = None
    reason: str = ""
    escalate: bool = False
    dry_run: bool = True
    namespace: str | None = None
    target: str | None = None
    evidence: list[str] = _json_list()
    flow_run_id: str | None = None


class IncidentAction(SQLModel, table=True):
    """One change through the gate: the audit row, written before the change is sent and
    completed after, so a crash in between still leaves the intent and the state before."""

    __tablename__ = "incident_action"
    # The guards' history query: what took effect lately, and what is reserved in progress.
    __table_args__ = (Index("ix_incident_action_status_finished_at", "status", "finished_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # NULL when the change was made outside an incident (a flow run on its own).
    incident_id: int | None = _incident_fk(nullable=True)
    change_key: str = Field(unique=True)  # the gate's key: stable across the task's retries
    action: str
    target_key: str = Field(index=True)
    status: ActionStatus = _enum(ActionStatus, ActionStatus.IN_PROGRESS)
    dry_run: bool = True
    summary: str = ""
    reason: str = ""
    before: dict[str, Any] = _json()
    after: dict[str, Any] = _json()
    revert: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # Each guard's verdict, in the gate's order: [{"guard", "passed", "detail"}, ...]
    verdicts: list[dict[str, Any]] = _json_list()
    note: str = ""
    error: str = ""
    attempts: int = 0
    flow_run_id: str | None = Field(default=None, index=True)
    flow_run_name: str = ""
    started_at: datetime = _when(nullable=False)
    finished_at: datetime | None = _when()
    # Set when the change passed its limits and is about to be sent: while the row is in
    # progress it holds a slot of the hourly budget (store/safety.py, count_budget).
    reserved_at: datetime | None = _when()


class IncidentFollowUp(SQLModel, table=True):
    """Work the incident leaves behind; `key` names it across the runs that create and close it."""

    __tablename__ = "incident_follow_up"

    id: int | None = Field(default=None, primary_key=True)
    # NULL only while a revert closed a follow-up the triage run had not recorded yet.
    incident_id: int | None = _incident_fk(nullable=True)
    key: str = Field(unique=True)
    kind: str  # revert, regression-test
    priority: str = "P2"
    title: str
    flow: str = ""  # the Prefect flow that does it, when one does
    parameters: dict[str, Any] = _json()
    condition: str = ""
    status: FollowUpStatus = _enum(FollowUpStatus, FollowUpStatus.OPEN)
    scheduled_flow_run_id: str | None = None
    scheduled_for: datetime | None = _when()
    created_at: datetime = _when(nullable=False)
    closed_at: datetime | None = _when()
    closed_by: str = ""  # the flow run (or person) that closed it
    note: str = ""


class IncidentEvent(SQLModel, table=True):
    """One line of the timeline."""

    __tablename__ = "incident_event"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = _incident_fk()
    at: datetime = _when(nullable=False, index=True)
    kind: EventKind = _enum(EventKind, EventKind.NOTE)
    status: IncidentStatus | None = _enum(IncidentStatus, None)  # moved to, for a transition
    summary: str
    flow_run_id: str | None = None


class ReceiptDisposition(StrEnum):
    INCIDENT = "incident"  # joined (or opened) an incident
    IGNORED = "ignored"  # outside the configured namespaces: not ours
    UNMATCHED = "unmatched"  # a resolved alert that belongs to no open incident


class AlertReceipt(SQLModel, table=True):
    """Each alert the intake accepted, once. Alertmanager retries, its HA replicas each send, and
    every repeat re-sends the whole group: (fingerprint, status, starts_at) is unique, so a copy
    is counted here and never starts anything. Written before the intake answers 2xx."""

    __tablename__ = "alert_receipt"
    __table_args__ = (UniqueConstraint("fingerprint", "status", "starts_at"),)

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str
    status: str
    starts_at: datetime = _when(nullable=False)
    alertname: str = ""
    labels: dict[str, str] = _json()
    source: str = "alertmanager"  # alertmanager, health-sweep
    receiver: str = ""
    group_key: str = ""
    disposition: ReceiptDisposition = _enum(ReceiptDisposition, ReceiptDisposition.INCIDENT)
    reason: str = ""  # why it was ignored, when it was
    incident_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("incident.id", ondelete="SET NULL"), index=True),
    )
    received_at: datetime = _when(nullable=False, index=True)
    copies: int = 0  # deliveries of the same alert after the first


class TriageOutbox(SQLModel, table=True):
    """A triage run owed to an incident. Written in the same transaction as the alert that
    opened the incident; delivered to the Prefect API when it answers, with the idempotency key
    (unique per flow in Prefect too), so a redelivery after a crash finds the same run."""

    __tablename__ = "triage_outbox"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    incident_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("incident.id", ondelete="SET NULL"), index=True),
    )
    run_name: str = ""
    parameters: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False)
    next_attempt_at: datetime = _when(nullable=False, index=True)
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = _when(index=True)
    flow_run_id: str | None = None


class TargetLease(SQLModel, table=True):
    """The gate's lock on one workload, across processes: a run holds the row from its change
    through its verification. A lease whose holder died is taken over once it expires, or as
    soon as the flow run that holds it has ended (tasks/changes/guards.py)."""

    __tablename__ = "target_lease"

    target_key: str = Field(primary_key=True)  # the owning workload, Deployment/ns/name
    # `flow-run:<id>` (held from the change through the run's verification, until that run
    # ends or the lease expires) or `change:<key>` (a change made outside a flow run)
    holder: str
    acquired_at: datetime = _when(nullable=False)
    expires_at: datetime = _when(nullable=False)
