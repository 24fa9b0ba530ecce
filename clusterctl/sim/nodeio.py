"""What the validation agent sees on a lab node: its `NodeIO` answered from the node's hardware model.

The agent (clusterctl/validate/agent.py) reads every fact through a NodeIO; this one serves
NVML from `NodeHardware.nvml()` through the fake pynvml, /sys/class/infiniband from
`NodeHardware.ib_ports()`, the commands it runs (journalctl, sudo, dmesg, systemctl and the
version tools) as the node's state says they would answer, the kernel log holding the node's XID
faults, and the software the node runs: what the lab ships (the versions the lab inventory expects),
or what the os stage last installed there. A lab node's root is a sandbox without a package manager,
so the playbooks skip the package installs; their last task records the versions they were given in
ROOT/etc/clusterctl/software.json, and the node runs those from then on (no reboot is modelled: the
driver changes at once). Apart from that one small file, nothing touches the disk, so validating
2,000 lab nodes costs no process per node.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from clusterctl.sim import fake_nvml
from clusterctl.sim.inventory import FIRMWARE, SOFTWARE
from clusterctl.sim.node import NodeHardware
from clusterctl.validate import agent

IB_FIRMWARE = FIRMWARE["ConnectX-7"]
NCCL_DIR = "/usr/lib/x86_64-linux-gnu"
RECORD = "etc/clusterctl/software.json"
"""Under a node's root: the versions the os stage installed (playbooks/site.yml's last task)."""
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+~-]{0,63}")


def installed_software(root: Path | None) -> dict[str, str]:
    """What the node runs: the lab's shipped versions, overridden by the os stage's record under `root`.
    The record was written by a shell on the node, so only known components with version-shaped values count."""
    software = dict(SOFTWARE)
    if root is None:
        return software
    try:
        recorded = json.loads((root / RECORD).read_text())
    except (OSError, ValueError):
        return software
    if isinstance(recorded, dict):
        for component in SOFTWARE:
            value = recorded.get(component)
            if isinstance(value, str) and _VERSION.fullmatch(value):
                software[component] = value
    return software


def cuda_driver(cuda: str) -> int:
    """NVML's encoding of the CUDA version a driver supports (12.4 -> 12040)."""
    major, minor = ([int(p) for p in re.findall(r"[0-9]+", cuda)] + [0, 0])[:2]
    return 1000 * major + 10 * minor


def commands(software: dict[str, str]) -> dict[str, str]:
    """The version tools' output, as the agent parses it."""
    return {
        "ofed_info": f"MLNX_OFED_LINUX-{software['ofed']}:\n",
        "nv-fabricmanager": f"Fabric Manager version is : {software['fabricmanager']}\n",
        "dcgmi": f"Version : {software['dcgm']}\nBuild ID : 14\n",
    }


class _NodeNVML:
    """The fake pynvml module, fed from this node's GPUs instead of a fixture file."""

    def __init__(self, hw: NodeHardware, software: dict[str, str]) -> None:
        self._hw = hw
        self._software = software

    def __getattr__(self, name: str) -> Any:
        return getattr(fake_nvml, name)

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's API names
        gpus = [dict(g, persistence_mode=1, ecc_mode=[1, 1]) for g in self._hw.nvml()]
        fake_nvml.load({"driver_version": self._software["driver"],
                        "cuda_driver_version": cuda_driver(self._software["cuda"]), "gpus": gpus})


# What a stock node answers where the SSH user may not read the kernel log: journalctl's hint
# (systemd's journalctl.c), sudo -n without a rule, dmesg under kernel.dmesg_restrict=1.
JOURNAL_HINT = ("Hint: You are currently not seeing messages from other users and the system.\n"
                "      Users in groups 'adm', 'systemd-journal' can see all messages.\n"
                "      Pass -q to turn off this notice.\n")
SUDO_REFUSED = "sudo: a password is required\n"
DMESG_REFUSED = "dmesg: read kernel buffer failed: Operation not permitted\n"
BOOT_LINES = ["[    0.000000] Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) #45-Ubuntu SMP",
              "[    7.412345] nvidia-nvswitch: Probing device 0000:05:00.0, Vendor Id = 0x10de, Device Id = 0x22a3"]


def kernel_log_lines(hw: NodeHardware) -> list[str]:
    """The node's kernel log since boot: the boot banner and its XIDs as the NVIDIA driver writes them."""
    lines = list(BOOT_LINES)
    for gpu in hw.nvml():
        bus = gpu["pci_bus_id"].split(":", 1)[1].rsplit(".", 1)[0].lower()  # 00000000:18:00.0 -> 18:00
        for event in gpu["xid_events"]:
            lines.append(f"[ 1234.567890] NVRM: Xid (PCI:0000:{bus}): {event['code']}, pid=4242, name=python3, "
                         "lab-injected fault")
    return lines


def _sysfs(hw: NodeHardware, root: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(file path -> content, directory path -> entries) of /sys/class/infiniband."""
    base = os.path.join(root, "class", "infiniband")
    files: dict[str, str] = {}
    dirs: dict[str, list[str]] = {base: []}
    for port in hw.ib_ports():
        hca = os.path.join(base, port["device"])
        dirs[base].append(port["device"])
        dirs[os.path.join(hca, "ports")] = [str(port["port"])]
        pdir = os.path.join(hca, "ports", str(port["port"]))
        files[os.path.join(hca, "fw_ver")] = IB_FIRMWARE
        for key in ("state", "phys_state", "rate", "link_layer"):
            files[os.path.join(pdir, key)] = str(port[key])
        for name, value in port["counters"].items():
            files[os.path.join(pdir, "counters", name)] = str(value)
        dirs[hca] = ["ports", "fw_ver"]
        dirs[pdir] = ["state", "phys_state", "rate", "link_layer", "counters"]
        dirs[os.path.join(pdir, "counters")] = list(port["counters"])
    return files, dirs


class LabNodeIO(agent.NodeIO):
    def __init__(self, hw: NodeHardware, sysfs_root: str = "/sys", root: str = "/",
                 software: dict[str, str] | None = None) -> None:
        self.hw = hw
        self.software = software or dict(SOFTWARE)
        self._files, self._dirs = _sysfs(hw, sysfs_root)
        cuda = json.dumps({"cuda": {"name": "CUDA SDK", "version": self.software["cuda"]}})
        self._files[os.path.join(root, "usr/local/cuda/version.json")] = cuda
        self._files[os.path.join(sysfs_root, "module/nvidia/version")] = self.software["driver"]
        self._nccl = os.path.join(root, NCCL_DIR.lstrip("/"), f"libnccl.so.{self.software['nccl']}")
        self._commands = commands(self.software)

    def hostname(self) -> str:
        return self.hw.name

    def now(self) -> float:
        return self.hw.clock.wall() if self.hw.clock is not None else super().now()

    def nvml(self) -> ModuleType:
        return _NodeNVML(self.hw, self.software)  # type: ignore[return-value]

    def read(self, path: str) -> str | None:
        return self._files.get(path)

    def isdir(self, path: str) -> bool:
        return path in self._dirs

    def listdir(self, path: str) -> list[str]:
        if path not in self._dirs:
            raise FileNotFoundError(path)
        return list(self._dirs[path])

    def glob(self, pattern: str) -> list[str]:
        folder = os.path.dirname(pattern)
        return [self._nccl] if os.path.basename(pattern).startswith("libnccl.so") and \
            folder == os.path.dirname(self._nccl) else []

    def command(self, argv: list[str]) -> tuple[int, str, str] | None:
        """(exit status, stdout, stderr) as the node would answer the agent's commands."""
        reader = {tuple(agent.JOURNAL_K): "journalctl", ("sudo", "-n", *agent.JOURNAL_K): "sudo",
                  ("dmesg",): "dmesg"}.get(tuple(argv))
        if reader is not None:
            if self.hw.kernel_log_readers()[reader]:
                return 0, "\n".join(kernel_log_lines(self.hw)) + "\n", ""
            return {"journalctl": (0, "-- No entries --\n", JOURNAL_HINT), "sudo": (1, "", SUDO_REFUSED),
                    "dmesg": (1, "", DMESG_REFUSED)}[reader]
        if argv[:2] == ["systemctl", "is-active"] and len(argv) == 3:
            state = self.hw.services().get(argv[2], "inactive")
            return (0 if state == "active" else 3), state + "\n", ""
        out = self._commands.get(argv[0])
        return None if out is None else (0, out, "")


def agent_report(hw: NodeHardware, args: list[str], node_root: Path | None = None) -> dict[str, Any]:
    """What `python3 - ARGS` with the agent on stdin prints on this node, as a dict; `node_root` is the
    node's filesystem in the lab (LAB_DIR/nodes/NAME/root), where the os stage leaves its record."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--sysfs-root", default="/sys")
    parser.add_argument("--kernel-log", default=None)
    parser.add_argument("--root", default="/")
    parser.add_argument("--software-only", action="store_true")
    known, _ = parser.parse_known_args(args)
    node = LabNodeIO(hw, known.sysfs_root, known.root, installed_software(node_root))
    return agent.collect(node, sysfs_root=known.sysfs_root, kernel_log_path=known.kernel_log, root=known.root,
                         software_only=known.software_only)
