"""The hardware-facts module, run as Ansible runs it (JSON arguments in, JSON out) on prepared sysfs trees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MODULE = Path(__file__).resolve().parents[2] / "playbooks" / "library" / "clusterctl_hw_facts.py"


def pci(sysfs: Path, address: str, vendor: str, cls: str) -> None:
    dev = sysfs / "bus" / "pci" / "devices" / address
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(vendor + "\n")
    (dev / "class").write_text(cls + "\n")
    (dev / "device").write_text("0x0000\n")


def facts(tmp_path: Path, sysfs: Path) -> dict[str, Any]:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"sysfs_root": str(sysfs)}}))
    done = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True, timeout=60,
                          check=True)
    result = json.loads(done.stdout)
    assert result["changed"] is False
    return result["ansible_facts"]["clusterctl_hw"]


def test_an_hgx_node_shows_gpus_nvswitches_and_hcas(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    for n in range(2):
        pci(sysfs, f"0000:1{n}:00.0", "0x10de", "0x030200")  # H100 SXM: 3D controller
    pci(sysfs, "0000:05:00.0", "0x10de", "0x068000")  # NVSwitch: bridge, other
    pci(sysfs, "0000:20:00.0", "0x15b3", "0x020700")  # ConnectX in InfiniBand mode
    pci(sysfs, "0000:21:00.0", "0x15b3", "0x020000")  # ConnectX in Ethernet mode: not an IB HCA
    pci(sysfs, "0000:00:02.0", "0x8086", "0x030000")  # an Intel VGA controller: not an NVIDIA GPU
    port = sysfs / "class" / "infiniband" / "mlx5_0" / "ports" / "1"
    port.mkdir(parents=True)
    (port / "state").write_text("4: ACTIVE\n")
    (port / "rate").write_text("400 Gb/sec (4X NDR)\n")
    (port / "link_layer").write_text("InfiniBand\n")

    hw = facts(tmp_path, sysfs)
    assert hw["gpu"] and hw["gpus"] == ["0000:10:00.0", "0000:11:00.0"]
    assert hw["nvswitch"] and hw["nvswitches"] == ["0000:05:00.0"]
    assert hw["ib"] and hw["ib_hcas"] == ["0000:20:00.0"]
    assert hw["ib_ports"] == [{"device": "mlx5_0", "port": "1", "state": "4: ACTIVE",
                               "rate": "400 Gb/sec (4X NDR)", "link_layer": "InfiniBand"}]
    assert hw["pkg_mgr"] in ("apt", "dnf", "none") and hw["kernel"]


def test_a_node_without_accelerators_guards_every_hardware_task(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    pci(sysfs, "0000:00:02.0", "0x8086", "0x030000")
    hw = facts(tmp_path, sysfs)
    assert (hw["gpu"], hw["nvswitch"], hw["ib"]) == (False, False, False)
    assert facts(tmp_path, tmp_path / "missing")["gpus"] == []
