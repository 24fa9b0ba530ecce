"""Event retention (clusterctl.state.retention): old and surplus events become counts, state stays.

One scenario on SQLite and PostgreSQL: two finished runs' worth of chatter, a crashed run's open
journal intent, an old XID, a maintenance state and a quarantine; compaction twice (idempotent,
counts merged), and the journal still sees the open intent afterwards.
"""

from __future__ import annotations

import time
from typing import Any

from clusterctl.state.retention import COMPACTED, EventRetention, compact_events

DAY = 86_400.0


def _kinds(store: Any, node: str) -> list[str]:
    return [e.kind for e in store.events(node=node)]


def test_old_and_surplus_events_fold_into_counts_and_state_survives(store: Any) -> None:
    now = time.time()
    old = now - 200 * DAY
    done = store.start_run("provision")
    with store.transaction() as tx:
        for i in range(30):  # old chatter of a finished run, on two nodes
            tx.event("ansible.task", node="h1-gpu0001", stage="os", run_id=done, payload={"task": i}, ts=old + i)
            tx.event("stage.done", node="h2-gpu0001", stage="os", run_id=done, ts=old + i)
        tx.event("gpu.xid", node="h1-gpu0001", payload={"xid": 79, "gpu": 3}, ts=old)
        tx.event("maintain.drained", node="h1-gpu0001", stage="maintain", run_id=done, ts=old)
        tx.event("quarantine.applied", node="h1-gpu0001", payload={"via": "slurm"}, ts=old)
        tx.event("firmware.outcome", node="h1-gpu0001", stage="firmware", run_id=done,
                 payload={"key": "BIOS", "result": "applied"}, ts=old)
        for i in range(8):  # recent events, more than the per-node quota below
            tx.event("stage.running", node="h1-gpu0001", stage="validate", run_id=done, ts=now - i)
    store.finish_run(done, "succeeded")
    crashed = store.start_run("provision")  # never finished: its events are what a resume reads
    with store.transaction() as tx:
        tx.event("firmware.intent", node="h1-gpu0001", stage="firmware", run_id=crashed,
                 payload={"key": "iDRAC"}, ts=old)
        tx.event("stage.running", node="h1-gpu0001", stage="firmware", run_id=crashed, ts=old)

    policy = EventRetention(keep_days=30, keep_per_node=5)
    first = compact_events(store, policy, now=now)
    assert first.as_dict() == {"nodes": 2, "deleted": 30 + 3 + 30}

    kinds = _kinds(store, "h1-gpu0001")
    assert kinds.count("stage.running") == 5 + 1  # the quota of recent ones, and the crashed run's
    for kept in ("gpu.xid", "maintain.drained", "quarantine.applied", "firmware.outcome", "firmware.intent"):
        assert kept in kinds, kept
    assert "ansible.task" not in kinds
    summary = store.events(node="h1-gpu0001", kind=COMPACTED)
    assert len(summary) == 1
    assert summary[0].payload["counts"] == {"ansible.task": 30, "stage.running": 3}
    assert summary[0].payload["first_ts"] == old
    assert _kinds(store, "h2-gpu0001") == [COMPACTED]

    again = compact_events(store, policy, now=now)
    assert again.as_dict() == {"nodes": 0, "deleted": 0}  # nothing left to fold: unchanged
    assert len(store.events(node="h1-gpu0001", kind=COMPACTED)) == 1

    with store.transaction() as tx:  # a later month: more chatter merges into the same summary
        for i in range(4):
            tx.event("stage.running", node="h1-gpu0001", stage="validate", run_id=done, ts=now + i)
    later = compact_events(store, policy, now=now + 10)
    assert later.deleted == 4
    merged = store.events(node="h1-gpu0001", kind=COMPACTED)
    assert len(merged) == 1
    assert merged[0].payload["counts"] == {"ansible.task": 30, "stage.running": 7}

    from clusterctl.provision.journal import Journal

    journal = Journal(store, crashed)  # its resume reader only: the writer thread is never started
    assert journal.load_open_intents(["h1-gpu0001"], ["firmware"]) == 1
    assert journal.last_outcome("h1-gpu0001", "firmware", "BIOS") == {"key": "BIOS", "result": "applied"}
