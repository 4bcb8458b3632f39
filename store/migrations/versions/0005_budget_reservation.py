"""The hourly budget holds across concurrent gates: a change that passed its limits reserves its
slot on its own audit row (`reserved_at`) before it is sent, and the next gate counts the
reserved rows still in progress with the applied ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident_action") as batch:
        batch.add_column(sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident_action") as batch:
        batch.drop_column("reserved_at")
