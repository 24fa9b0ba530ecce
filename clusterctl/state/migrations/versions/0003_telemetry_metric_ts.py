"""Telemetry by metric and time: the dashboard's "current" views read one metric's last minutes on every node.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_telemetry_metric_ts", "telemetry", ["metric", "ts"])


def downgrade() -> None:
    op.drop_index("ix_telemetry_metric_ts", table_name="telemetry")
