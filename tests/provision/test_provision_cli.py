"""`clusterctl provision` options: --dry-run, --canary, --max-failures, --stages, --limit, and --yes."""

from __future__ import annotations

from pathlib import Path

from support.provision_lab import Lab, open_store

FAULTS = """\
faults:
  - {node: gpu0001, kind: gpu_missing}
  - {node: gpu0004, kind: gpu_missing}
"""


def test_dry_run_prints_the_diff_and_waves_and_changes_nothing(lab: Lab) -> None:
    lab.up(10, time_scale=1000)
    code, plan, err = lab.cli("-o", "json", "provision", str(lab.inventory), "--dry-run", "--poll-interval", "0.05")
    assert code == 0, err
    node = plan["nodes"]["gpu0003"]
    assert node["discover"]["mismatches"] == [] and node["discover"]["facts"]["gpus"] == 8
    firmware = node["firmware"]["change"]
    assert firmware["iDRAC"] == {"from": ["7.00.30.00"], "to": "7.10.30.00"}
    assert "PSU" not in firmware and set(firmware) == {"iDRAC", "BIOS", "ConnectX-7", "HGX-H100", "CPLD"}
    assert node["bios"]["change"]["LogicalProc"] == {"from": "Enabled", "to": "Disabled"}
    assert node["boot"] == {"skip": "the inventory names no OS to install (software.os, software.os_image)"}
    assert plan["waves"]["lab-r01"] == {"nodes_to_reboot": 8, "at_once": 2, "waves": 4, "max_rebooting": 2,
                                        "power_budget_w": 96000}
    assert plan["waves"]["lab-r02"]["nodes_to_reboot"] == 2 and plan["waves"]["lab-r02"]["waves"] == 1
    for server in lab.status().values():
        assert server["firmware_applied"] == {} and server["resets"] == {} and server["bios_pending"] == {}
    store = open_store()
    try:
        assert store.latest_run() is None  # a plan records nothing
    finally:
        store.close()


def test_canary_and_max_failures_stop_the_run(lab: Lab, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(FAULTS)
    lab.up(8, time_scale=1000, faults=faults)

    code, summary, err = lab.provision("--stages", "discover", "--canary", "2")
    assert code == 1, err
    assert summary["stopped"] == "canary failed on gpu0001"
    assert [f["node"] for f in summary["failed"]] == ["gpu0001"]
    assert summary["ready"] == 1 and len(summary["pending"]) == 6
    store = open_store()
    try:
        rows = {r.node: r.status for r in store.node_stages() if r.stage == "discover"}
        assert rows["gpu0001"] == "failed" and rows["gpu0002"] == "done"
        # Never started: no row, or a pending one (a controller writes a node's rows once it holds its lease).
        assert {rows.get(f"gpu{i:04d}", "pending") for i in range(3, 9)} == {"pending"}
    finally:
        store.close()

    code, summary, err = lab.provision("--stages", "discover", "--concurrency", "1", "--max-failures", "1",
                                       "--limit", "gpu[0002-0008]")
    assert code == 1, err
    assert summary["stopped"] == "1 node(s) failed (--max-failures 1)"
    assert [f["node"] for f in summary["failed"]] == ["gpu0004"]
    assert summary["ready"] == 2 and summary["pending"] == ["gpu0005", "gpu0006", "gpu0007", "gpu0008"]

    code, summary, err = lab.provision("--stages", "discover", "--max-failures", "50%")
    assert code == 1 and summary["ready"] == 6 and summary["stopped"] is None, err


def test_bad_input_is_one_line_exit_2(lab: Lab, repo: Path) -> None:
    inventory = repo / "inventories" / "lab.yaml"  # nothing here reaches a BMC: no lab needed
    code, _, err = lab.cli("provision", str(inventory))  # no --yes, and stdin is not a terminal
    assert code == 2 and err.strip().count("\n") == 0 and "pass --yes" in err
    code, _, err = lab.cli("provision", str(inventory), "--yes", "--stages", "discover,flash")
    assert code == 2 and "unknown stage(s) flash" in err and "Traceback" not in err
    code, _, err = lab.cli("provision", str(inventory), "--yes", "--max-failures", "lots")
    assert code == 2 and "--max-failures 'lots'" in err
    code, _, err = lab.cli("provision", str(inventory), "--yes", "--limit", "gpu9999")
    assert code == 2 and "matches no node" in err
