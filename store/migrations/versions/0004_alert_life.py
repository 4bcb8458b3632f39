"""An incident's life follows its alerts: when the fix held on the cluster (`held_at`, so a
resolved notification may resolve it) and how many times it came back after it resolved
(`relapses`); and incident ids are never reused (SQLite AUTOINCREMENT).

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
    # On SQLite the table is rebuilt with AUTOINCREMENT: a merged (deleted) incident's id is
    # never handed out again (store/models.py Incident). PostgreSQL's sequence never reuses one.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "incident",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("held_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("relapses", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("relapses")
        batch.drop_column("held_at")
