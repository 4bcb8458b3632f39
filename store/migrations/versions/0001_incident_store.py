"""The incident store: incidents, alerts, decisions, actions, follow-ups and the timeline.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column(
            "status",
            sa.String(length=32),
            nullable=False,
        ),
        sa.Column("scenario", sa.String(), nullable=True),
        sa.Column("target_key", sa.String(), nullable=False),
        sa.Column("open_key", sa.String(), nullable=True),
        sa.Column("namespace", sa.String(), nullable=True),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("triaged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mitigating_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("root_cause", sa.String(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("resolution", sa.String(), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("report_path", sa.String(), nullable=True),
        sa.Column("triage_flow_run_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index("ix_incident_opened_at", "incident", ["opened_at"], unique=False)
    op.create_index("ix_incident_scenario", "incident", ["scenario"], unique=False)
    op.create_index("ix_incident_status", "incident", ["status"], unique=False)
    op.create_index("ix_incident_target_key", "incident", ["target_key"], unique=False)

    op.create_table(
        "incident_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("change_key", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target_key", sa.String(), nullable=False),
        sa.Column(
            "status",
            sa.String(length=32),
            nullable=False,
        ),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("revert", sa.JSON(), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("flow_run_name", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("change_key"),
    )
    op.create_index(
        "ix_incident_action_flow_run_id", "incident_action", ["flow_run_id"], unique=False
    )
    op.create_index(
        "ix_incident_action_incident_id", "incident_action", ["incident_id"], unique=False
    )
    op.create_index(
        "ix_incident_action_target_key", "incident_action", ["target_key"], unique=False
    )

    op.create_table(
        "incident_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("alertname", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generator_url", sa.String(), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "fingerprint"),
    )
    op.create_index(
        "ix_incident_alert_fingerprint", "incident_alert", ["fingerprint"], unique=False
    )
    op.create_index("ix_incident_alert_group_key", "incident_alert", ["group_key"], unique=False)
    op.create_index(
        "ix_incident_alert_incident_id", "incident_alert", ["incident_id"], unique=False
    )

    op.create_table(
        "incident_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scenario", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("escalate", sa.Boolean(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=True),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_incident_decision_incident_id", "incident_decision", ["incident_id"], unique=False
    )

    op.create_table(
        "incident_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "kind",
            sa.String(length=32),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.String(length=32),
            nullable=True,
        ),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incident_event_at", "incident_event", ["at"], unique=False)
    op.create_index(
        "ix_incident_event_incident_id", "incident_event", ["incident_id"], unique=False
    )

    op.create_table(
        "incident_follow_up",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("priority", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("condition", sa.String(), nullable=False),
        sa.Column(
            "status",
            sa.String(length=32),
            nullable=False,
        ),
        sa.Column("scheduled_flow_run_id", sa.String(), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        "ix_incident_follow_up_incident_id", "incident_follow_up", ["incident_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_incident_follow_up_incident_id", table_name="incident_follow_up")

    op.drop_table("incident_follow_up")
    op.drop_index("ix_incident_event_incident_id", table_name="incident_event")
    op.drop_index("ix_incident_event_at", table_name="incident_event")

    op.drop_table("incident_event")
    op.drop_index("ix_incident_decision_incident_id", table_name="incident_decision")

    op.drop_table("incident_decision")
    op.drop_index("ix_incident_alert_incident_id", table_name="incident_alert")
    op.drop_index("ix_incident_alert_group_key", table_name="incident_alert")
    op.drop_index("ix_incident_alert_fingerprint", table_name="incident_alert")

    op.drop_table("incident_alert")
    op.drop_index("ix_incident_action_target_key", table_name="incident_action")
    op.drop_index("ix_incident_action_incident_id", table_name="incident_action")
    op.drop_index("ix_incident_action_flow_run_id", table_name="incident_action")

    op.drop_table("incident_action")
    op.drop_index("ix_incident_target_key", table_name="incident")
    op.drop_index("ix_incident_status", table_name="incident")
    op.drop_index("ix_incident_scenario", table_name="incident")
    op.drop_index("ix_incident_opened_at", table_name="incident")

    op.drop_table("incident")
