"""Turn a state URL into a SQLAlchemy engine with the settings the store relies on.

SQLite: WAL (readers never block the writer), foreign keys on, a busy timeout, and
`BEGIN IMMEDIATE` for write transactions, so two writers queue on the lock instead
of one failing half-way with "database is locked" when it upgrades a read lock.
The database file, its -wal and its -shm are 0600 and their directory, when clusterctl makes it or it is
the state directory, 0700 (see `clusterctl.state.private`). PostgreSQL: `postgresql://` means psycopg 3.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from clusterctl import log
from clusterctl.errors import StateError
from clusterctl.state.private import private_dir, private_file, state_dir

BUSY_TIMEOUT_S = 30.0
# Execution option a connection carries when it is about to write.
WRITE = "clusterctl_write"


def display_url(url: str | URL) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as the user typed it, minus credentials
        return str(url).split("@")[-1]


def normalise(url: str) -> URL:
    """Parse a state URL; bad ones raise `StateError` with what to type instead."""
    text = url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises ArgumentError or ValueError
        raise StateError(
            f"cannot parse state URL {display_url(text)!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from exc
    if parsed.password:
        log.redact(str(parsed.password))  # so that no log line, even a driver's, can show it
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    if backend == "postgresql" and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StateError(
        f"unsupported state URL {display_url(parsed)!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def create_engine(url: str) -> Engine:
    parsed = normalise(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StateError(
            "a postgresql:// state URL needs psycopg: pip install 'psycopg[binary]>=3.1'"
        ) from exc
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _sqlite_engine(parsed: URL) -> Engine:
    database = parsed.database or ":memory:"
    kwargs: dict[str, Any] = {}
    if database == ":memory:":
        # One connection for everyone, or each would see its own empty database.
        kwargs["poolclass"] = StaticPool
    else:
        path = Path(os.path.expanduser(database))
        _private_database(path)
        parsed = parsed.set(database=str(path))
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        **kwargs,
    )
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _private_database(path: Path) -> None:
    """Make the database file 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
    database's own mode, so they are private too, whatever the umask."""
    parent = path.parent
    if not parent.exists() or parent.absolute().is_relative_to(state_dir().absolute()):
        private_dir(parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):  # left by an older clusterctl, perhaps 0644
        private_file(path.with_name(path.name + suffix), create=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let us issue BEGIN ourselves (see _sqlite_on_begin); pysqlite's implicit BEGIN is always DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "memory":
            cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts and never loses a commit to a killed process;
        # only a power cut can lose the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
