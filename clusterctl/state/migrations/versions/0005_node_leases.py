"""Several controllers on one store: each controller's heartbeat, the nodes each holds, and each rack's
reboot slots and measured draw shared between them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Epoch: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "controllers",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("pid_started", sa.Double, nullable=True),
        sa.Column("started_at", Epoch, nullable=False),
        sa.Column("heartbeat_at", Epoch, nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("command", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("token", name="pk_controllers"),
    )
    op.create_table(
        "node_leases",
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("controller", sa.String(64), nullable=True),
        sa.Column("job", sa.String(64), nullable=True),
        sa.Column("taken_at", Epoch, nullable=True),
        sa.Column("worked_by", sa.String(64), nullable=True),
        sa.Column("finished_at", Epoch, nullable=True),
        sa.PrimaryKeyConstraint("node", name="pk_node_leases"),
    )
    op.create_index("ix_node_leases_controller", "node_leases", ["controller"])
    op.create_table(
        "rack_power",
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("rack", sa.String(255), nullable=False),
        sa.Column("measured_w", sa.Double, nullable=True),
        sa.Column("rebooting_by", sa.String(64), nullable=True),
        sa.Column("since", Epoch, nullable=True),
        sa.PrimaryKeyConstraint("node", name="pk_rack_power"),
    )
    op.create_index("ix_rack_power_rack", "rack_power", ["rack"])


def downgrade() -> None:
    op.drop_table("rack_power")
    op.drop_table("node_leases")
    op.drop_table("controllers")
