"""Leases: one holder at a time per named job (a second `clusterctl provision` on the store is refused).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Epoch: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("pid_started", sa.Double, nullable=True),
        sa.Column("started_at", Epoch, nullable=False),
        sa.Column("heartbeat_at", Epoch, nullable=False),
        sa.Column("command", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
