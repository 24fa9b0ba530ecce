"""Faults in the lab: the right node fails at the right stage with a readable reason, the rest finish;
and reboots never exceed a rack's power budget or reboot limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from support.provision_lab import APPLIED_ONCE, Lab, assert_journal_complete, open_store

FAULTS = """\
faults:
  - {node: gpu0001, kind: bmc_unreachable}
  - {node: gpu0002, kind: gpu_missing, params: {gpu: 3}}
  - {node: gpu0003, kind: firmware_update_fails}
  - {node: gpu0004, kind: firmware_update_hangs, params: {component: nic}}
  - {node: gpu0005, kind: bmc_503, params: {rate: 0.3, retry_after: 1}}
  - {node: gpu0006, kind: session_limit, params: {max: 0}}
  - {node: gpu0007, kind: psu_failed, params: {psu: 2}}
  - {node: gpu0009, kind: activation_fails, params: {component: cpld}}
"""


def test_each_fault_fails_its_node_at_its_stage(lab: Lab, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(FAULTS)
    lab.up(12, time_scale=1000, faults=faults)
    code, summary, err = lab.provision("--request-timeout", "0.5", "--job-timeout", "4")
    assert code == 1, err
    failed = {f["node"]: (f["stage"], f["reason"]) for f in summary["failed"]}
    assert set(failed) == {"gpu0001", "gpu0002", "gpu0003", "gpu0004", "gpu0007", "gpu0009"}
    assert failed["gpu0001"][0] == "discover" and "ReadTimeout" in failed["gpu0001"][1]
    assert failed["gpu0002"] == ("discover", "hardware differs from the inventory: 7 GPUs visible, inventory says 8")
    assert failed["gpu0003"][0] == "firmware" and "iDRAC" in failed["gpu0003"][1]
    assert "Failed" in failed["gpu0003"][1]
    assert failed["gpu0004"][0] == "firmware" and "ConnectX-7" in failed["gpu0004"][1]
    assert "still Running after 4 s" in failed["gpu0004"][1]
    assert failed["gpu0007"][0] == "discover" and "PSU.Slot.2" in failed["gpu0007"][1]
    # The HGX image took effect with the AC cycle; the CPLD's did not, and the node says so.
    assert failed["gpu0009"] == ("firmware", "firmware CPLD: still at 1.1.1 after the AC power cycle")
    assert summary["ready"] == 6 and not summary["pending"]

    servers = lab.status()
    for node in ("gpu0005", "gpu0006", "gpu0008", "gpu0012"):
        assert servers[node]["firmware_applied"] == APPLIED_ONCE, node
        assert len(servers[node]["bios_changes"]) == 1, node
    assert servers["gpu0009"]["ac_cycles"] == 1 and servers["gpu0009"]["firmware"]["gpu"] == "24.03.1"
    for node in ("gpu0002", "gpu0007"):  # failed before any side effect
        assert servers[node]["firmware_applied"] == {} and servers[node]["resets"] == {}, node
    assert servers["gpu0003"]["firmware_failed"] == {"idrac": 1}
    assert servers["gpu0003"]["firmware_applied"] == {}  # the failed BMC image stopped the pass

    store = open_store()
    try:
        assert_journal_complete(store)
        run = store.latest_run("provision")
        assert run is not None and run.status == "failed"
        assert store.events(0, run_id=run.id, node="gpu0006", kind="bmc.basic_auth")
        failing = {(f.node, f.stage) for f in store.failing(run.id)}
        assert failing == {(n, s) for n, (s, _) in failed.items()}
    finally:
        store.close()


def _sample(running: Lab, stop: threading.Event, seen: list[dict[str, int]]) -> None:
    """Watch the lab independently of the engine: servers not On, per rack."""
    while not stop.is_set():
        try:
            servers = running.status_quiet()
        except Exception:  # noqa: BLE001 - a sample missed is not a failure
            continue
        per_rack: dict[str, int] = {}
        for s in servers.values():
            if s["power_state"] != "On":
                per_rack[s["rack"]] = per_rack.get(s["rack"], 0) + 1
        seen.append(per_rack)
        time.sleep(0.02)


def _reboot_windows(store: Any) -> list[tuple[float, float, str, str]]:
    """(start, end, node, stage) of every reboot, from its intent and outcome events."""
    opened: dict[tuple[str, str], float] = {}
    windows = []
    for e in store.events(0):
        if e.payload and isinstance(e.payload, dict) and e.payload.get("key") == "reboot":
            if e.kind.endswith(".intent"):
                opened[(e.node, e.stage)] = e.ts
            elif e.kind.endswith(".outcome"):
                windows.append((opened.pop((e.node, e.stage)), e.ts, e.node, e.stage))
    return windows


def test_reboots_respect_rack_power_budget(lab: Lab) -> None:
    # 8 nodes per rack idle at ~1,960 W; one reboot counts 11,000 W: 1 fits in 30 kW, 2 do not.
    lab.up(16, time_scale=1000, budget_w=30000, max_rebooting=2)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_sample, args=(lab, stop, seen), daemon=True)
    watcher.start()
    try:
        code, summary, err = lab.provision()
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert code == 0, err
    assert summary["ready"] == 16
    for rack, peak in summary["racks"].items():
        assert peak["peak_rebooting"] == 1 and peak["peak_estimated_w"] <= 30000, rack

    assert len(seen) > 20, "the lab was hardly sampled"
    assert max((n for sample in seen for n in sample.values()), default=0) <= 1
    assert any(sample for sample in seen), "no reboot was ever observed"

    store = open_store()
    try:
        windows = _reboot_windows(store)
        inventory_nodes = {f"gpu{i:04d}": "lab-r01" if i <= 8 else "lab-r02" for i in range(1, 17)}
        assert len(windows) == 32  # one firmware and one BIOS reboot per node
        for start, end, node, _ in windows:
            overlapping = [w for w in windows if w[2] != node and inventory_nodes[w[2]] == inventory_nodes[node]
                           and w[0] < end and start < w[1]]
            assert not overlapping, (node, overlapping)
        racks_in_parallel = any(
            inventory_nodes[a[2]] != inventory_nodes[b[2]] and a[0] < b[1] and b[0] < a[1]
            for a in windows for b in windows
        )
        assert racks_in_parallel, "racks should reboot side by side: the limit is per rack"
    finally:
        store.close()
