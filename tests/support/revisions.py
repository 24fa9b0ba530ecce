"""A store put back to an older revision by hand: what a store made by an older clusterctl looks like,
for the tests that open one and expect the migrations to bring it to the head."""

from __future__ import annotations

from typing import Any

ADDED = {  # what each migration added, undone newest first (tables that others refer to last)
    "0007": ["DROP INDEX ix_checks_node_check_id", "DROP INDEX ix_checks_status"],
    "0006": ["DROP TABLE check_bands"],
    "0005": ["DROP TABLE rack_power", "DROP TABLE node_leases", "DROP TABLE controllers"],
    "0004": ["DROP TABLE check_findings", "DROP TABLE check_figures"],
    "0003": ["DROP INDEX ix_telemetry_metric_ts"],
    "0002": ["DROP TABLE leases"],
}


def rewind(conn: Any, to: str) -> None:
    """Undo every migration after `to` on an open connection (a transaction the caller commits)."""
    for revision in sorted(ADDED, reverse=True):
        if revision > to:
            for statement in ADDED[revision]:
                conn.exec_driver_sql(statement)
    conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{to}'")
