"""One `clusterctl provision` at a time per state store: the second is refused naming the first; a killed
first one is taken over by the next command at once."""

from __future__ import annotations

import os
import signal
import socket
import time

import sqlalchemy as sa
from support.provision_lab import FAST, Lab, open_store

from clusterctl.state import schema


def wait_for_lease(timeout_s: float = 60) -> int:
    """The pid holding the provision lease, once the first run has taken it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        store = open_store()
        try:
            with store.engine.connect() as conn:
                row = conn.execute(sa.select(schema.leases.c.pid)).first()
        finally:
            store.close()
        if row is not None:
            return int(row[0])
        time.sleep(0.1)
    raise AssertionError("the first run never took the lease")


def test_a_second_run_is_refused_and_a_killed_one_taken_over(lab: Lab) -> None:
    lab.up(8, time_scale=20)  # slow: the first run is still working when the second starts
    first = lab.provision_process(*FAST, new_session=True)
    try:
        assert wait_for_lease() == first.pid
        code, out, err = lab.provision("--stages", "discover")
        assert code == 2, (out, err)
        assert "another `provision` is running on this state store" in err
        assert f"host {socket.gethostname()}, pid {first.pid}, started at 20" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert first.poll() is None  # the refused run did not disturb the first
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)

    code, summary, err = lab.provision("--stages", "discover")
    assert code == 0, err
    assert summary["ready"] == 8
    store = open_store()
    try:
        (taken,) = store.events(kind="lease.taken_over")
        assert taken.payload["from"]["pid"] == first.pid
        runs = store.runs()
        assert runs[0].status == "succeeded" and {r.status for r in runs[1:]} <= {"interrupted"}
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.leases)).scalar() == 0
    finally:
        store.close()
