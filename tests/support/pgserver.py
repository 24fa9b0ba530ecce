"""A PostgreSQL for the store tests: the one CI names, or a private throwaway server.

tests/conftest.py offers its fixtures to every test; the server starts when the first test asks
for it and serves the whole session. Without PostgreSQL binaries the tests skip locally but fail
when `CI` is set.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import leftovers, pg_watchdog
from support.ports import ephemeral_port

ENV_URL = "CLUSTERCTL_TEST_POSTGRES_URL"


@dataclass
class Server:
    admin_url: str  # postgresql://... of a database we may CREATE DATABASE from
    datadir: Path | None = None
    pg_ctl: list[str] = field(default_factory=list)
    users: int = 0

    def create_database(self) -> tuple[str, str]:
        """A fresh, empty database: (its URL, its name)."""
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"clusterctl_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_libpq(self.admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False), name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(_libpq(self.admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.datadir is None:
            return
        subprocess.run([*self.pg_ctl, "stop", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30"],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)
        self.datadir = None


_shared: Server | None = None


def acquire() -> Server:
    """The session's server, started on first use; pair every call with `release()`."""
    global _shared
    if _shared is None:
        url = os.environ.get(ENV_URL)
        _shared = Server(admin_url=url) if url else start_private()
    _shared.users += 1
    return _shared


def release() -> None:
    global _shared
    if _shared is None:
        return
    _shared.users -= 1
    if _shared.users <= 0:
        _shared.stop()
        _shared = None


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def start_private() -> Server:
    """A throwaway server of this process's own, stopped by `Server.stop()` or, failing that, by its watchdog."""
    bindir = _bindir()
    if bindir is None:
        message = f"no PostgreSQL binaries (initdb, pg_ctl) and {ENV_URL} is not set"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the store tests on PostgreSQL", pytrace=False)
        pytest.skip(message)
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' user to run PostgreSQL as", pytrace=False)
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="clusterctl-pg-"))
    _watch(base)
    datadir, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if owner is not None:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    init = subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr[-2000:]}", pytrace=False)
    port = ephemeral_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    pg_ctl = [*as_user, str(bindir / "pg_ctl")]
    logfile = base / "server.log"
    start = subprocess.run(
        [*pg_ctl, "start", "-D", str(datadir), "-l", str(logfile), "-w", "-t", "60", "-o", options],
        capture_output=True, text=True, timeout=120, check=False,
        env=leftovers.session_env(),  # the server outlives the test that happens to start it
    )
    if start.returncode != 0:
        log = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {start.stderr[-1000:]} {log}", pytrace=False)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return Server(admin_url=url, datadir=datadir, pg_ctl=pg_ctl)


def _watch(base: Path) -> None:
    """A watchdog (support.pg_watchdog) that stops the server and removes `base` once this process is gone:
    a pytest killed by a timeout has no session teardown. Started before initdb, so no moment is uncovered."""
    subprocess.run([sys.executable, pg_watchdog.__file__, str(os.getpid()), str(base)],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   start_new_session=True, env=leftovers.session_env(), timeout=30, check=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    server = acquire()
    try:
        yield server
    finally:
        release()


@pytest.fixture
def postgres_url(postgres_server: Server) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    url, name = postgres_server.create_database()
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on both backends; PostgreSQL starts only when a test asks for it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))
