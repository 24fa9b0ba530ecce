"""Crash safety: `kill -9` the provisioning process at 20 random moments, re-run the same command each
time; in the end every node is ready, every image was applied exactly once, and the journal is whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

from support.provision_lab import APPLIED_ONCE, FAST, Lab, assert_journal_complete, open_store

KILLS = 20


def _until_work_begins(proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    """Until the run has written an event (bounded, and over if the process ended)."""
    store = open_store()
    try:
        last = store.events(0, newest=True, limit=1)
        after = last[0].id if last else 0
        deadline = time.monotonic() + limit_s
        while proc.poll() is None and time.monotonic() < deadline and not store.events(after, limit=1):
            time.sleep(0.05)
    finally:
        store.close()


def test_kill_nine_at_random_moments_then_resume(lab: Lab) -> None:
    lab.up(8, time_scale=250)  # a whole run takes longer than the 20 kills give it, so they all land in work
    rng = random.Random(20261125)
    finished_early = 0
    for _ in range(KILLS):
        proc = lab.provision_process(*FAST, new_session=True)
        # The kill moment counts from the run's first event, not from the start of the process: on a
        # loaded machine Python's start-up alone can outlast a fixed delay, and every kill then lands
        # before any work.
        _until_work_begins(proc)
        time.sleep(rng.uniform(0.2, 2.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            finished_early += 1
        proc.wait(timeout=30)
        assert proc.stderr is not None
        errors = proc.stderr.read().decode(errors="replace")
        assert "Traceback" not in errors, errors
    final = lab.provision_process(*FAST, new_session=True)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode(errors="replace")

    servers = lab.status()
    for node, server in servers.items():
        assert server["firmware_applied"] == APPLIED_ONCE, (node, server["firmware_applied"])
        assert server["firmware_failed"] == {}, node
        assert len(server["bios_changes"]) == 1, (node, server["bios_changes"])
        assert server["bios_pending"] == {}, node

    store = open_store()
    try:
        assert_journal_complete(store)
        # The kills did land mid-work: later runs followed jobs that killed runs had started.
        assert store.events(0, kind="firmware.resumed")
        ready = {r.node: r.status for r in store.node_stages() if r.stage == "ready"}
        assert ready == {f"gpu{i:04d}": "done" for i in range(1, 9)}
        runs = store.runs(limit=100)
        assert runs[0].status == "succeeded"
        assert all(r.status in ("interrupted", "succeeded") for r in runs), [r.status for r in runs]
        killed = [r for r in runs if r.status == "interrupted"]
        print(f"{len(killed)} of {KILLS} kills landed in a started run; {finished_early} runs finished first")
        assert len(killed) >= KILLS // 2, f"only {len(killed)} kills landed in a started run"
    finally:
        store.close()
