"""Bring a store's schema to the revision this code was written for.

Opening a store that is already current costs one query and never imports Alembic,
which keeps read-only commands such as `clusterctl status` quick.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from clusterctl.errors import StateError
from clusterctl.state.connect import WRITE, display_url
from clusterctl.state.schema import HEAD_REVISION

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant will do: it only has to be the same for every clusterctl process.
_PG_MIGRATION_LOCK = 0x636C7573_74657201


def current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def ensure_schema(engine: Engine) -> None:
    """Upgrade to HEAD_REVISION; refuse a store written by a newer clusterctl."""
    with engine.connect() as connection:
        if _read_revision(connection) == HEAD_REVISION:
            return
    _upgrade(engine)


def _read_revision(connection: sa.Connection) -> str | None:
    try:
        return current_revision(connection)
    finally:
        connection.rollback()


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        found = current_revision(connection)
        if found == HEAD_REVISION:
            return  # another process migrated while we waited for the lock
        if found is not None and found not in known:
            raise StateError(
                f"the state store {display_url(engine.url)} has schema revision {found!r}, newer than this "
                f"clusterctl understands (up to {HEAD_REVISION!r}): upgrade clusterctl"
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
