"""`clusterctl maintain` on the lab with no scheduler: nodes are taken directly, in batches under the floor,
each updated through the provision stages, validated and burned in alone before it serves again."""

from __future__ import annotations

import os
from pathlib import Path

from support.cli import CLI
from support.lab import start_lab
from support.maintain_lab import FAST, lab_changes, retarget_firmware, retarget_software, without_scheduler

from clusterctl.state.store import Store


def test_maintain_updates_burns_in_and_resumes_and_keeps_a_slow_node_out(tmp_path: Path, cli: CLI) -> None:
    faults = [{"node": "gpu0004", "kind": "gpu_slow", "params": {"gpu": 1, "factor": 0.33}}]
    with start_lab(tmp_path / "lab", 4, faults, time_scale=2000) as lab:
        inventory = without_scheduler(lab.inventory(tmp_path / "lab.yaml"))
        retarget_firmware(inventory, lab.directory, "HGX-H100", "24.07.0")

        code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--max-unavailable", "2",
                             "--burnin-minutes", "0.05", "--burnin-model", "transformer-tiny", *FAST)
        assert code == 1, (doc, err)
        assert doc["resumed"] == ["gpu0001", "gpu0002", "gpu0003"]
        # Validation cannot see a slow GPU; the burn-in on the node alone does, and the node stays out.
        assert list(doc["failed"]) == ["gpu0004"] and doc["failed"]["gpu0004"].startswith("burn-in: "), doc
        assert doc["peak_unavailable"] <= 2
        changes = lab_changes(lab.directory)
        assert {n: c["firmware"]["gpu"] for n, c in changes.items()} == dict.fromkeys(changes, "24.07.0")
        assert all(c["firmware_applied"]["gpu"] == 1 for c in changes.values())

        code, doc, err = cli("-o", "json", "plan", str(inventory))
        assert code == 0 and doc["drifted"] == 0, (doc, err)
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            kinds = [e.kind for e in store.events(0, node="gpu0001", stage="maintain")]
            flags = [(f.node, f.source) for f in store.flags(quarantined_only=True)]
        assert kinds == ["maintain.draining", "maintain.drained", "maintain.updating", "maintain.updated",
                         "maintain.validating", "maintain.burnin", "maintain.resuming", "maintain.resumed"]
        assert flags == [("gpu0004", "clusterctl maintain:none")]

        # Run again: nothing drifted, the failed node is left as it is, with its reason.
        code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--burnin-minutes", "0", *FAST)
        assert doc["drifted"] == [] and doc["resumed"] == [], (doc, err)
        assert doc["skipped"]["gpu0004"].startswith("left drained by an earlier rollout: burn-in: ")
        assert lab_changes(lab.directory) == changes

        # A node held out counts against the floor: with room for 2, one is left.
        code, doc, err = cli("-o", "json", "maintain", str(inventory), "--dry-run", "--max-unavailable", "2")
        assert code == 0 and doc["unavailable_now"] == ["gpu0004"], (doc, err)

        # Released (`burnin release`, as for any quarantine), it is the operator's again: no longer reported.
        code, _, err = cli("burnin", "release", "gpu0004")
        assert code == 0, err
        code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--burnin-minutes", "0", *FAST)
        assert code == 0 and doc["skipped"] == {} and doc["drifted"] == [], (doc, err)


def test_a_failed_canary_stops_the_rollout_before_any_other_node(tmp_path: Path, cli: CLI) -> None:
    faults = [{"node": "gpu0001", "kind": "gpu_missing", "params": {"gpu": 2}}]
    with start_lab(tmp_path / "lab", 3, faults, time_scale=2000) as lab:
        inventory = without_scheduler(lab.inventory(tmp_path / "lab.yaml"))
        before = lab_changes(lab.directory)
        code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--canary", "1",
                             "--max-unavailable", "3", "--burnin-minutes", "0", *FAST)
        assert code == 1 and doc["stopped"] == "canary failed on gpu0001", (doc, err)
        assert list(doc["failed"]) == ["gpu0001"] and "gpu.count" in doc["failed"]["gpu0001"]
        after = lab_changes(lab.directory)
        assert after["gpu0002"] == before["gpu0002"] and after["gpu0003"] == before["gpu0003"]
        assert after["gpu0001"]["firmware_applied"]  # the canary itself was updated, then failed validation


def test_a_driver_change_runs_the_os_stage_and_the_node_then_reports_the_new_driver(tmp_path: Path, cli: CLI) -> None:
    """The os stage's playbooks record the versions they installed; the lab's node reports those from then on,
    so a new driver target is drift in `plan`, `maintain` installs it, and validation and `plan` see it."""
    with start_lab(tmp_path / "lab", 2, time_scale=2000) as lab:
        inventory = without_scheduler(lab.inventory(tmp_path / "lab.yaml"))
        for component, version in (("iDRAC", "7.00.30.00"), ("BIOS", "2.2.8"), ("ConnectX-7", "28.39.1002"),
                                   ("HGX-H100", "23.10.2"), ("CPLD", "1.1.1")):
            retarget_firmware(inventory, lab.directory, component, version)  # what the servers run: no change
        inventory.write_text(inventory.read_text().replace("  bios_profile: ai-training\n", ""))
        retarget_software(inventory, "driver", "550.127.05")
        retarget_software(inventory, "fabricmanager", "550.127.05")  # Fabric Manager follows the driver
        code, doc, err = cli("-o", "json", "plan", str(inventory))
        assert code == 1 and [(r["item"], r["from"], r["to"], r["count"]) for r in doc["summary"]] == [
            ("driver", "550.90.07", "550.127.05", 2), ("fabricmanager", "550.90.07", "550.127.05", 2)], (doc, err)

        code, doc, err = cli("-o", "json", "maintain", str(inventory), "--yes", "--limit", "gpu0001",
                             "--burnin-minutes", "0", *FAST)
        assert code == 0 and doc["resumed"] == ["gpu0001"], (doc, err)
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            updating = next(e for e in store.events(0, node="gpu0001", stage="maintain")
                            if e.kind == "maintain.updating")
            ran = [e.payload.get("result") for e in store.events(0, node="gpu0001", kind="os.outcome")]
        assert updating.payload["stages"] == ["firmware", "bios", "os"] and ran == ["ok"], (updating.payload, ran)
        assert lab_changes(lab.directory)["gpu0001"]["firmware_applied"] == {}  # no firmware was flashed

        code, doc, err = cli("-o", "json", "plan", str(inventory))
        assert code == 1 and [d["node"] for d in doc["per_node"] if d["drifted"]] == ["gpu0002"], (doc, err)
