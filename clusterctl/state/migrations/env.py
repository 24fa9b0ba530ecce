"""Alembic environment for the state store.

Run from code only (`clusterctl.state.migrate`), which hands over an open connection
already inside a write transaction: the version check and the DDL then happen under
one lock, so two processes opening a new store at once cannot both migrate it.
"""

from __future__ import annotations

from alembic import context

from clusterctl.state.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the state store migrations through clusterctl.state.migrate, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
