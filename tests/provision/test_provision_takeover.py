"""Two `clusterctl provision` on one store: the second does not wait for or disturb the first's nodes, and a
killed first one's nodes are taken over by the next command at once (same host: its pid is gone)."""

from __future__ import annotations

import os
import signal
import socket
import time

from support.provision_lab import FAST, Lab, open_store

from clusterctl.state import node_leases


def wait_for_holder(timeout_s: float = 60) -> dict[str, str]:
    """The nodes the first run holds, once it holds some."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        store = open_store()
        try:
            held = node_leases.holders(store)
        finally:
            store.close()
        if held:
            return held
        time.sleep(0.1)
    raise AssertionError("the first run never took a node")


def test_a_killed_run_is_taken_over_at_once_by_the_next(lab: Lab) -> None:
    lab.up(8, time_scale=20)  # slow: the first run is still working when it is killed
    first = lab.provision_process(*FAST, new_session=True)
    try:
        held = wait_for_holder()
        assert set(held.values()) == {f"{socket.gethostname()}:{first.pid}"}
        code, out, err = lab.cli("-o", "json", "status")
        assert code == 0, err
        (shown,) = out["controllers"]  # status names the controller and its nodes
        assert shown["controller"] == f"{socket.gethostname()}:{first.pid}" and shown["job"] == "provision"
        assert shown["holding"] >= len(held) and shown["nodes"].startswith("gpu")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)

    code, summary, err = lab.provision("--stages", "discover")
    assert code == 0, (summary, err)
    assert summary["ready"] == 8
    store = open_store()
    try:
        (taken,) = store.events(kind="lease.taken_over")
        assert taken.payload["from"]["pid"] == first.pid and "no longer running" in taken.payload["why"]
        runs = store.runs()
        assert runs[0].status == "succeeded" and {r.status for r in runs[1:]} == {"interrupted"}
        assert node_leases.holders(store) == {}
    finally:
        store.close()
