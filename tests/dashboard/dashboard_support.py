"""Helpers the dashboard tests share: the token, a store filled through the store API, screenshots.

A module of its own (not conftest) so that `from dashboard_support import ...` cannot pick up another
directory's conftest when the whole suite runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterctl.state.records import Sample
from clusterctl.state.store import Store

TOKEN = "dashboard-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"


@dataclass(frozen=True)
class Filled:
    """What `fill` wrote, so tests assert against it rather than against literals."""

    provision_run: int
    burnin_run: int
    counts: dict[str, int]
    straggler: str


def fill(store: Store, nodes: list[str]) -> Filled:
    """Synthetic records for the stages whose commands are still being written (provision, validate, burn-in)."""
    run = store.start_run("provision", inventory="lab.yaml")
    for stage in ("discover", "firmware", "bios", "os"):
        store.set_stages(nodes, stage, "running", run_id=run)
        store.set_stages(nodes, stage, "done", run_id=run,
                         detail={"versions": {"BIOS": "2.3.5", "iDRAC": "7.00.00.00"}} if stage == "firmware" else None)
    store.set_stage(nodes[2], "os", "failed", run_id=run, reason="PXE boot timed out after 600 s")
    store.set_stage(nodes[3], "validate", "running", run_id=run)
    store.record_check(nodes[4], "gpu.count", "fail", run_id=run, detail="7 of 8 GPUs visible",
                       data={"hint": "Reseat GPU 3 or RMA the baseboard", "found": 7})
    store.record_check(nodes[4], "ib.ports", "pass", run_id=run)
    store.record_check(nodes[5], "gpu.temperature", "warn", run_id=run, detail="GPU 2 at 84 C idle")
    store.set_flag(nodes[6], quarantined=True, reason="XID 79 twice", source="burnin")
    store.event("gpu.xid", node=nodes[6], payload={"xid": 79, "gpu": 2})
    store.event("gpu.xid", node=nodes[6], payload={"xid": 79, "gpu": 2})
    store.event("gpu.xid", node=nodes[6], payload={"xid": 48, "gpu": 5})
    store.finish_run(run, "failed", {"failed": 2})

    burnin = store.start_run("burnin")
    straggler = nodes[8]
    now = time.time()
    samples = []
    for i, node in enumerate(nodes):
        speed = 41_000.0 + 150 * (i % 5) if node != straggler else 13_500.0
        status = "fail" if node == straggler else "pass"
        reasons = [{"check": "burnin.speed", "status": "fail", "detail": "rank 0: straggler, 33% of the median",
                    "remediation": "Compare clocks with a healthy node."}] if node == straggler else []
        store.record_burnin(node, status, run_id=burnin, reasons=reasons, metrics={"local_tokens_per_s": speed})
        for step in range(0, 50, 10):
            loss = 9.0 * (0.9 ** step) + 0.01 * i
            samples.append(Sample(node, "burnin.loss", loss, now - 60 + step, {"run": burnin, "rank": 0, "step": step}))
    store.record_telemetry(samples)
    store.finish_run(burnin, "failed")
    # nodes[2] (stage), [4] (check) and [8] (burn-in) fail; [3] provisions; [5] warns; [6] is quarantined.
    counts = {"quarantined": 1, "fail": 3, "provisioning": 1, "warn": 1, "ready": len(nodes) - 6, "unknown": 0}
    return Filled(run, burnin, counts, straggler)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
