"""Leases on SQLite and PostgreSQL: one holder at a time, a dead holder taken over, the living one named."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from support.revisions import rewind

from clusterctl.state import schema
from clusterctl.state.leases import Holder, LeaseHeld, acquire
from clusterctl.state.store import Store

HOLDER = (
    "import sys, time\n"
    "from clusterctl.state.store import Store\n"
    "from clusterctl.state.leases import acquire\n"
    "store = Store.open(sys.argv[1])\n"
    "lease = acquire(store, 'provision', command='provision site.yaml', heartbeat_s=0.2)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
    "lease.release()\n"
)


def rows(store: Store) -> list[Holder]:
    with store.engine.connect() as conn:
        return [Holder(**r._mapping) for r in conn.execute(sa.select(schema.leases))]


def hold_in_another_process(store_url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, store_url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read() if proc.stderr else ""
    return proc


def test_a_second_taker_is_refused_with_the_holder_named(store: Store, store_url: str) -> None:
    other = hold_in_another_process(store_url)
    try:
        with pytest.raises(LeaseHeld) as refused:
            acquire(store, "provision")
        message = str(refused.value)
        assert f"pid {other.pid}" in message and f"host {socket.gethostname()}" in message
        assert "started at 20" in message and "(provision site.yaml)" in message
        assert refused.value.holder.pid == other.pid
        # A lease of another name is independent.
        acquire(store, "burnin").release()
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(timeout=30)
    assert rows(store) == []  # released on the way out
    acquire(store, "provision").release()


def test_a_holder_killed_on_this_host_is_taken_over_at_once(store: Store, store_url: str) -> None:
    other = hold_in_another_process(store_url)
    os.kill(other.pid, signal.SIGKILL)
    other.wait(timeout=30)
    (stale,) = rows(store)
    assert stale.pid == other.pid and time.time() - stale.heartbeat_at < 30  # its heartbeat is still fresh
    lease = acquire(store, "provision")
    try:
        (row,) = rows(store)
        assert row.pid == os.getpid() and row.token == lease.holder.token
        (event,) = store.events(kind="lease.taken_over")
        assert event.payload["from"]["pid"] == other.pid and "no longer running" in event.payload["why"]
    finally:
        lease.release()


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(store: Store) -> None:
    # The row claims this very pid, but with a start time that is not this process's: a dead holder.
    with store.transaction() as tx:
        tx.connection.execute(schema.leases.insert().values(
            name="provision", token="x", host=socket.gethostname(), pid=os.getpid(), pid_started=1.0,
            started_at=time.time(), heartbeat_at=time.time(), command=None))
    acquire(store, "provision").release()


def test_another_hosts_holder_counts_until_its_heartbeat_is_too_old(store: Store) -> None:
    away = acquire(store, "provision", host="elsewhere", pid=1, ttl_s=1.0, heartbeat_s=0.1)
    try:
        time.sleep(1.5)  # longer than the time to live: only the heartbeat keeps it
        with pytest.raises(LeaseHeld, match="host elsewhere, pid 1"):
            acquire(store, "provision", ttl_s=1.0)
    finally:
        away._stop.set()  # the holder "crashes": no more heartbeats, no release
        away._thread.join(5)
    with pytest.raises(LeaseHeld):
        acquire(store, "provision", ttl_s=30.0)  # heartbeat 0.1 s old: still alive for a 30 s lease
    time.sleep(1.2)
    mine = acquire(store, "provision", ttl_s=1.0)
    try:
        (event,) = store.events(kind="lease.taken_over")
        assert "no heartbeat for" in event.payload["why"]
        assert [r.host for r in rows(store)] == [socket.gethostname()]
    finally:
        mine.release()
    away.release()  # the late release of a replaced holder must not delete the successor's row
    assert rows(store) == []


def test_a_holder_that_was_taken_over_knows_it(store: Store) -> None:
    # Heartbeats rarer than the time to live: the lease goes stale between two of them.
    old = acquire(store, "provision", host="elsewhere", pid=1, ttl_s=0.5, heartbeat_s=1.0)
    time.sleep(0.7)
    new = acquire(store, "provision", ttl_s=0.5, heartbeat_s=0.1)
    try:
        deadline = time.monotonic() + 10
        while old.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert old.lost is not None and "taken over" in old.lost
        assert [r.token for r in rows(store)] == [new.holder.token]
    finally:
        old.release()
        new.release()
    assert rows(store) == []


def test_a_store_of_the_previous_revision_gains_the_lease_table(store_url: str) -> None:
    with Store.open(store_url) as store:
        run_id = store.start_run("provision")
        with store.engine.begin() as conn:
            rewind(conn, "0001")
    with Store.open(store_url) as store:
        assert [r.id for r in store.runs()] == [run_id]
        acquire(store, "provision").release()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == schema.HEAD_REVISION
