"""The alert intake: each accepted alert once (its receipt), and the triage runs owed (outbox).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alertname", sa.String(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("receiver", sa.String(), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("copies", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint", "status", "starts_at"),
    )
    op.create_index("ix_alert_receipt_incident_id", "alert_receipt", ["incident_id"])
    op.create_index("ix_alert_receipt_received_at", "alert_receipt", ["received_at"])

    op.create_table(
        "triage_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("run_name", sa.String(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_triage_outbox_delivered_at", "triage_outbox", ["delivered_at"])
    op.create_index("ix_triage_outbox_incident_id", "triage_outbox", ["incident_id"])
    op.create_index("ix_triage_outbox_next_attempt_at", "triage_outbox", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_triage_outbox_next_attempt_at", table_name="triage_outbox")
    op.drop_index("ix_triage_outbox_incident_id", table_name="triage_outbox")
    op.drop_index("ix_triage_outbox_delivered_at", table_name="triage_outbox")
    op.drop_table("triage_outbox")
    op.drop_index("ix_alert_receipt_received_at", table_name="alert_receipt")
    op.drop_index("ix_alert_receipt_incident_id", table_name="alert_receipt")
    op.drop_table("alert_receipt")
