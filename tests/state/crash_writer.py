"""Writes to a store as fast as it can until killed; used by test_crash.py.

Transaction `seq` writes one stage transition, three `tick` events and two telemetry
samples, all tagged with `seq`; the test checks that every seq is all there or absent.
"""

from __future__ import annotations

import sys

from clusterctl.state.records import Sample
from clusterctl.state.store import Store

STAGES = ("discover", "bios", "os")
STATUSES = ("running", "done", "failed", "pending")
MAX_TRANSACTIONS = 200_000  # a bound in case the test that should kill us is gone


def main(url: str) -> None:
    store = Store.open(url)
    last = store.events(kind="tick", newest=True, limit=1)
    seq = last[0].payload["seq"] + 1 if last else 0
    run_id = store.start_run("provision")
    print("ready", flush=True)
    for _ in range(MAX_TRANSACTIONS):
        with store.transaction() as tx:
            tx.set_stage(f"n{seq % 7}", STAGES[seq % 3], STATUSES[seq % 4], run_id=run_id,
                         reason=f"seq {seq}", detail={"seq": seq})
            for part in range(3):
                tx.event("tick", node=f"n{seq % 7}", run_id=run_id, payload={"seq": seq, "part": part})
            tx.record_telemetry([Sample(f"n{seq % 7}", "seq", float(seq), ts=float(seq)) for _ in range(2)])
        seq += 1


if __name__ == "__main__":
    main(sys.argv[1])
