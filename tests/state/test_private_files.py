"""The state directory is 0700 and the database, its -wal and its -shm 0600, whoever makes them, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterctl.cli.context import default_state_url
from clusterctl.dashboard.auth import load_token
from clusterctl.errors import StateError
from clusterctl.sim.labdir import default_lab_dir, ensure_lab_dir
from clusterctl.state.private import private_dir, state_dir
from clusterctl.state.store import Store

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The laxest umask: whatever is private below is so because clusterctl made it so."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def written(url: str) -> None:
    """Open the store and write once, leaving it open so that SQLite's -wal and -shm files exist."""
    with Store.open(url) as store:
        store.start_run("provision")
        db = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            assert mode(db.with_name(db.name + suffix)) == 0o600, suffix


def test_a_new_store_is_private_from_its_first_byte(tmp_path: Path) -> None:
    db = tmp_path / "made" / "here" / "state.db"
    written(f"sqlite:///{db}")
    assert mode(db.parent) == mode(db.parent.parent) == 0o700


def test_a_state_directory_another_command_left_open_is_made_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLUSTERCTL_STATE")  # the default store, in the state directory
    state_dir().mkdir(parents=True, mode=0o777)  # as an older `lab up` or Ansible run left it
    written(default_state_url())
    assert mode(state_dir()) == 0o700


def test_files_an_older_version_left_readable_are_made_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    db = tmp_path / "state.db"
    Store.open(f"sqlite:///{db}").close()
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        path.touch()
        path.chmod(0o644)
    written(f"sqlite:///{db}")
    assert mode(tmp_path) == 0o755  # a directory the user chose is left as it is: only the files are ours


def test_every_command_that_may_come_first_makes_the_state_directory_private(tmp_path: Path) -> None:
    ensure_lab_dir(default_lab_dir())
    assert mode(state_dir()) == mode(default_lab_dir()) == 0o700

    state_dir().chmod(0o755)
    load_token()  # the dashboard's stored token
    assert (mode(state_dir()), mode(state_dir() / "dashboard-token")) == (0o700, 0o600)

    state_dir().chmod(0o755)
    private_dir(state_dir() / "ansible")  # the OS stage's artifacts
    assert mode(state_dir()) == mode(state_dir() / "ansible") == 0o700


@as_root
def test_a_state_directory_of_someone_else_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLUSTERCTL_STATE")
    state_dir().mkdir(parents=True)
    os.chown(state_dir(), NOBODY, NOBODY)
    with pytest.raises(StateError, match=f"{state_dir()} belongs to uid {NOBODY}, not to you"):
        Store.open(default_state_url())
    assert not (state_dir() / "state.db").exists()


@as_root
def test_a_database_someone_else_planted_as_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("not a database")
    db = tmp_path / "state.db"
    db.symlink_to(target)
    os.lchown(db, NOBODY, NOBODY)
    with pytest.raises(StateError, match="belongs to uid"):
        Store.open(f"sqlite:///{db}")
    assert target.read_text() == "not a database"
