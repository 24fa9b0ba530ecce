"""What a state URL turns into: SQLite with a private directory, WAL and foreign keys; psycopg 3."""

from __future__ import annotations

import stat
from pathlib import Path

from clusterctl import log
from clusterctl.state.connect import normalise
from clusterctl.state.store import Store


def test_creates_a_private_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "clusterctl" / "state.db"
    with Store.open(f"sqlite:///{path}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_in_memory_store_works_for_one_process() -> None:
    with Store.open("sqlite://") as store:
        store.set_stage("n1", "os", "done", run_id=store.start_run("provision"))
        assert store.stage_summary() == {"os": {"done": 1}}


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalise("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_a_password_in_the_url_is_masked_in_logs() -> None:
    normalise("postgresql://clusterctl:Vb7-url-password@db.example/state")
    assert log.scrub("connecting with Vb7-url-password") == f"connecting with {log.MASK}"
