"""The initial state store: runs, node stages, events, checks, telemetry, burn-in, flags.

Written out table by table rather than from `schema.metadata`, so this revision keeps
creating the same schema after the live metadata moves on.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Epoch: sa.Double[float] = sa.Double()



def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Epoch, nullable=False),
        sa.Column("finished_at", Epoch, nullable=True),
        sa.Column("inventory", sa.Text, nullable=True),
        sa.Column("args", sa.JSON, nullable=True),
        sa.Column("summary", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted')", name="ck_runs_status_valid"
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "node_stages",
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.Column("updated_at", Epoch, nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("node", "stage", name="pk_node_stages"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_node_stages_run_id_runs"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed', 'skipped')",
            name="ck_node_stages_status_valid",
        ),
    )
    op.create_index("ix_node_stages_run_id", "node_stages", ["run_id"])
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", Epoch, nullable=False),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("stage", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])
    op.create_index("ix_events_node", "events", ["node"])
    op.create_table(
        "checks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("check", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("ts", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_checks"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_checks_run_id_runs"),
        sa.CheckConstraint("status IN ('pass', 'warn', 'fail')", name="ck_checks_status_valid"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_checks_run_id", "checks", ["run_id"])
    op.create_index("ix_checks_node_ts", "checks", ["node", "ts"])
    op.create_table(
        "telemetry",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("ts", Epoch, nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("labels", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry"),
    )
    op.create_index("ix_telemetry_node_metric_ts", "telemetry", ["node", "metric", "ts"])
    op.create_table(
        "burnin_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", BigId, nullable=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("ts", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_burnin_results"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_burnin_results_run_id_runs"),
    )
    op.create_index("ix_burnin_results_run_id", "burnin_results", ["run_id"])
    op.create_table(
        "node_flags",
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("quarantined", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("since", Epoch, nullable=False),
        sa.Column("source", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("node", name="pk_node_flags"),
    )


def downgrade() -> None:
    for table in ("node_flags", "burnin_results", "telemetry", "checks", "events", "node_stages", "runs"):
        op.drop_table(table)
