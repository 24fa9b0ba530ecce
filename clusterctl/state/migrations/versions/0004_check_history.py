"""Periodic checks: every figure per node and round, and what each round found beyond the absolute rules.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Epoch: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "check_figures",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("ts", Epoch, nullable=False),
        sa.Column("labels", sa.JSON, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_check_figures_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_check_figures"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_check_figures_run_id", "check_figures", ["run_id"])
    op.create_index("ix_check_figures_node_metric_ts", "check_figures", ["node", "metric", "ts"])
    op.create_table(
        "check_findings",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("judge", sa.String(16), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("since", Epoch, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("remediation", sa.Text, nullable=True),
        sa.Column("ts", Epoch, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_check_findings_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_check_findings"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_check_findings_run_id", "check_findings", ["run_id"])
    op.create_index("ix_check_findings_ts", "check_findings", ["ts"])
    op.create_index("ix_check_findings_node_ts", "check_findings", ["node", "ts"])


def downgrade() -> None:
    op.drop_table("check_findings")
    op.drop_table("check_figures")
