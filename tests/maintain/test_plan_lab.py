"""`clusterctl plan` on the lab: firmware from the BMCs, BIOS attributes, software from the agent over SSH."""

from __future__ import annotations

from pathlib import Path

from support.cli import CLI
from support.lab import Lab
from support.maintain_lab import lab_changes, retarget_firmware, retarget_software, without_scheduler


def groups(doc: dict) -> dict[tuple[str, str], tuple[str, str, int]]:
    return {(r["kind"], r["item"]): (r["from"], r["to"], r["count"]) for r in doc["summary"]}


def test_plan_shows_drift_per_component_and_follows_new_targets(lab_with_ssh: Lab, tmp_path: Path, cli: CLI) -> None:
    inventory = lab_with_ssh.inventory(tmp_path / "lab.yaml")
    before = lab_changes(lab_with_ssh.directory)

    code, doc, err = cli("-o", "json", "plan", str(inventory))
    assert code == 1, err
    assert doc["nodes"] == 4 and doc["drifted"] == 4 and doc["unreadable"] == []
    found = groups(doc)
    # The lab's servers ship older firmware than the lab inventory pins (clusterctl.sim.bmc.COMPONENTS).
    assert found[("firmware", "HGX-H100")] == ("23.10.2", "24.03.1", 4)
    assert found[("firmware", "iDRAC")] == ("7.00.30.00", "7.10.30.00", 4)
    assert ("firmware", "PSU") not in found  # already current
    assert not any(kind == "software" for kind, _ in found)  # the lab's nodes run the pinned software

    retarget_firmware(inventory, lab_with_ssh.directory, "HGX-H100", "24.07.0")
    retarget_software(inventory, "driver", "550.127.05")
    code, doc, err = cli("-o", "json", "plan", str(inventory), "--limit", "gpu[0001-0002]")
    assert code == 1, err
    assert doc["nodes"] == 2
    found = groups(doc)
    assert found[("firmware", "HGX-H100")] == ("23.10.2", "24.07.0", 2)
    assert found[("software", "driver")] == ("550.90.07", "550.127.05", 2)
    per_node = {d["node"]: d for d in doc["per_node"]}
    assert per_node["gpu0001"]["changes"]["software"] == {"driver": {"from": "550.90.07", "to": "550.127.05"}}

    # maintain --dry-run: the same drift and the first batch the floor allows, nothing changed.
    code, doc, err = cli("-o", "json", "maintain", str(without_scheduler(inventory)), "--dry-run",
                         "--max-unavailable", "3")
    assert code == 0, err
    assert doc["drifted"] == ["gpu0001", "gpu0002", "gpu0003", "gpu0004"]
    assert doc["first_batch"] == ["gpu0001", "gpu0002", "gpu0003"] and doc["max_unavailable"] == 3

    code, text, err = cli("plan", str(inventory), "--limit", "gpu0003")
    assert code == 1 and "1 node: HGX-H100 23.10.2 → 24.07.0" in text, (text, err)
    # Nothing was changed: no firmware job ran on any server.
    assert lab_changes(lab_with_ssh.directory) == before
