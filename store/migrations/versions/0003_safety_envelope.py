"""The safety envelope: the gate's lease per target (one run changes a target at a time, across
processes) and each guard's verdict on the audit row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "target_lease",
        sa.Column("target_key", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target_key"),
    )
    with op.batch_alter_table("incident_action") as batch:
        batch.add_column(sa.Column("verdicts", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("incident_action") as batch:
        batch.drop_column("verdicts")
    op.drop_table("target_lease")
