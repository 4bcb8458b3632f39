"""An incident's life follows its alerts: when the fix held on the cluster (`held_at`, so a
resolved notification may resolve it) and how many times it came back after it resolved
(`relapses`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("held_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("relapses", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("relapses")
        batch.drop_column("held_at")
