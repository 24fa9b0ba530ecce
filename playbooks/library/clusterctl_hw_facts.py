#!/usr/bin/python
"""Ansible module: the hardware and tooling facts that guard clusterctl's provisioning tasks.

Every role decides from these facts whether a task can act on this node (an NVIDIA GPU,
an NVSwitch, an InfiniBand HCA, a package manager, systemd), so the same task graph runs
on a real GPU server, in the embedded lab and on test hosts: tasks skip instead of failing
or disappearing. Reading sysfs costs one round trip, against the seconds a full
`setup` takes on a node with hundreds of devices and mounts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: clusterctl_hw_facts
short_description: GPU, NVSwitch, InfiniBand and OS facts for clusterctl's roles
description:
  - Reads PCI devices and InfiniBand ports from sysfs and finds the package manager, systemd
    and nvidia-smi. Changes nothing. Sets the fact C(clusterctl_hw).
options:
  sysfs_root:
    description: Where sysfs is mounted; the embedded lab and tests point this at a prepared tree.
    type: path
    default: /sys
  nvidia_smi:
    description: The nvidia-smi to use instead of the one on PATH (the lab's stands in for the real one).
    type: path
author: clusterctl
"""

RETURN = r"""
ansible_facts:
  description: >-
    C(clusterctl_hw) with gpu, gpus, nvswitch, nvswitches, ib, ib_hcas, ib_ports, pkg_mgr,
    systemd, kernel, arch, nvidia_smi, root, os_id, os_version, initramfs, grub, kernel_headers, mft.
  returned: always
  type: dict
"""

NVIDIA = "0x10de"
MELLANOX = "0x15b3"
# PCI class codes (base class, subclass): display 03/00 (VGA) and 03/02 (3D controller) are GPUs;
# NVIDIA's NVSwitch enumerates as 06/80 (bridge, other); Mellanox HCAs as 02/07 (InfiniBand).
GPU_CLASSES = ("0x0300", "0x0302")
NVSWITCH_CLASS = "0x0680"
IB_CLASS = "0x0207"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def pci_devices(sysfs: Path) -> list[dict[str, str]]:
    base = sysfs / "bus" / "pci" / "devices"
    if not base.is_dir():
        return []
    found = []
    for dev in sorted(base.iterdir()):
        found.append({"address": dev.name, "vendor": _read(dev / "vendor").lower(),
                      "device": _read(dev / "device").lower(), "class": _read(dev / "class").lower()})
    return found


def ib_ports(sysfs: Path) -> list[dict[str, str]]:
    base = sysfs / "class" / "infiniband"
    if not base.is_dir():
        return []
    ports = []
    for hca in sorted(base.iterdir()):
        port_dir = hca / "ports"
        for port in sorted(port_dir.iterdir()) if port_dir.is_dir() else []:
            ports.append({"device": hca.name, "port": port.name, "state": _read(port / "state"),
                          "rate": _read(port / "rate"), "link_layer": _read(port / "link_layer")})
    return ports


def package_manager() -> str:
    for name, program in (("apt", "apt-get"), ("dnf", "dnf")):
        if shutil.which(program):
            return name
    return "none"


def os_release(path: str = "/etc/os-release") -> dict[str, str]:
    """ID and VERSION_ID of os-release(5): they name NVIDIA's repository for the node (ubuntu2204, rhel9)."""
    found = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                found[key] = value.strip().strip('"').strip("'")
    except OSError:
        pass
    return {"os_id": found.get("ID", ""), "os_version": found.get("VERSION_ID", "")}


def initramfs_tool() -> str:
    """What rebuilds the initramfs here (Debian's initramfs-tools or dracut); empty where there is none."""
    for program in ("update-initramfs", "dracut"):
        if shutil.which(program):
            return program
    return ""


def find_nvidia_smi(given: str | None) -> str:
    if given:
        return given if os.access(given, os.X_OK) else ""
    return shutil.which("nvidia-smi") or ""


def hardware_facts(sysfs: Path, nvidia_smi: str | None = None) -> dict[str, object]:
    devices = pci_devices(sysfs)
    gpus = [d["address"] for d in devices if d["vendor"] == NVIDIA and d["class"][:6] in GPU_CLASSES]
    switches = [d["address"] for d in devices if d["vendor"] == NVIDIA and d["class"][:6] == NVSWITCH_CLASS]
    hcas = [d["address"] for d in devices if d["vendor"] == MELLANOX and d["class"][:6] == IB_CLASS]
    ports = ib_ports(sysfs)
    root = os.environ.get("CLUSTERCTL_ROOT") or "/"
    return {
        "gpu": bool(gpus),
        "gpus": gpus,
        "nvswitch": bool(switches),
        "nvswitches": switches,
        "ib": bool(hcas or ports),
        "ib_hcas": hcas,
        "ib_ports": ports,
        # A relocated root has no package manager of its own: apt/dnf would install into the real /.
        "pkg_mgr": package_manager() if root == "/" else "none",
        "systemd": os.path.isdir("/run/systemd/system"),
        "kernel": os.uname().release,
        "arch": os.uname().machine,
        "nvidia_smi": find_nvidia_smi(nvidia_smi),
        # DKMS builds against these; a node whose kernel is not a distribution package has them already or never.
        "kernel_headers": os.path.isdir(f"/lib/modules/{os.uname().release}/build"),
        "initramfs": initramfs_tool(),
        "grub": bool(shutil.which("update-grub")),
        # mlxconfig comes with NVIDIA's firmware tools (mft), which the inbox RDMA stack does not ship.
        "mft": bool(shutil.which("mlxconfig")),
        **os_release(),
        # A node whose filesystem lives below a prefix says so (the embedded lab's sandboxes do);
        # everything else writes to /.
        "root": root,
    }


def main() -> None:
    module = AnsibleModule(argument_spec={"sysfs_root": {"type": "path", "default": "/sys"},
                                          "nvidia_smi": {"type": "path"}},
                           supports_check_mode=True)
    facts = hardware_facts(Path(module.params["sysfs_root"]), module.params["nvidia_smi"])
    module.exit_json(changed=False, ansible_facts={"clusterctl_hw": facts})


if __name__ == "__main__":
    main()
