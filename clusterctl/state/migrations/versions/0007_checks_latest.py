"""Checks by status, and by node and check in id order: the fleet page's "latest result of each check
that is not a pass" reads the few warn and fail rows, not every check ever stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_checks_status", "checks", ["status"])
    op.create_index("ix_checks_node_check_id", "checks", ["node", "check", "id"])


def downgrade() -> None:
    op.drop_index("ix_checks_node_check_id", table_name="checks")
    op.drop_index("ix_checks_status", table_name="checks")
