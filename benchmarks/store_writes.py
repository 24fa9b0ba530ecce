"""Goal: the state store (SQLite) takes bulk results at ≥ 40,000 telemetry rows/s and ≥ 15,000 check rows/s.

A 1,000-node burn-in writes ~217k samples and a 2,000-node validation tens of thousands of checks;
before bulk writes these were ~12 s and the controller's biggest cost after SSH. Writes, in a
temporary store, the samples `burnin.run.samples` makes from 8 ranks × 20 steps on 120 nodes and
20 checks on each of 2,000 nodes, each in one transaction, and reports rows/s (best of 2).

    .venv/bin/python benchmarks/store_writes.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

GOAL_SAMPLES = 40_000
GOAL_CHECKS = 15_000


def main() -> int:
    from clusterctl.burnin.run import STEP_METRICS, samples
    from clusterctl.state.records import NewCheck
    from clusterctl.state.store import Store

    records = [{"event": "step", "node": f"gpu{n:04d}", "rank": r, "step": s, "time": 1.7e9 + s,
                **{m: 1.0 + s for m in STEP_METRICS}} for n in range(120) for r in range(8) for s in range(20)]
    data = {"rule": "gpu.count", "remediation": None, "data": {"found": 8, "expected": 8}}
    checks = [NewCheck(f"gpu{n:04d}", f"check{c}", "pass", "8 of 8 GPUs", data) for n in range(2000) for c in range(20)]
    best_samples = best_checks = 0.0
    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{Path(tmp) / 'state.db'}") as store:
        run_id = store.start_run("burnin")
        for _ in range(2):
            start = time.perf_counter()
            readings = samples(records, run_id)
            with store.transaction() as tx:
                tx.record_telemetry(readings)
            best_samples = max(best_samples, len(readings) / (time.perf_counter() - start))
            start = time.perf_counter()
            with store.transaction() as tx:
                tx.record_checks(checks, run_id=run_id)
            best_checks = max(best_checks, len(checks) / (time.perf_counter() - start))
    ok = best_samples >= GOAL_SAMPLES and best_checks >= GOAL_CHECKS
    print(f"telemetry: {len(readings):,} rows at {best_samples:,.0f} rows/s (goal ≥ {GOAL_SAMPLES:,}); "
          f"checks: {len(checks):,} rows at {best_checks:,.0f} rows/s (goal ≥ {GOAL_CHECKS:,}) "
          f"{'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
