"""Periodic checks: each round's peer median and spread per metric and GPU model, so a node page's peers'
band is read, not recomputed from every node's figures of every round.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Rounds stored before this revision get no rows: the dashboard computes their band from the figures.
    op.create_table(
        "check_bands",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("median", sa.Double, nullable=False),
        sa.Column("mad", sa.Double, nullable=False),
        sa.Column("peers", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_check_bands_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_check_bands"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_check_bands_run_id_metric", "check_bands", ["run_id", "metric"])


def downgrade() -> None:
    op.drop_table("check_bands")
