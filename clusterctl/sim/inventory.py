"""The inventory of the embedded lab: N simulated XE9680-like nodes on loopback, racks of 8.

`lab up --nodes N` writes this file; inventories/lab.yaml is the same text for 16
nodes with `~/.local/state/clusterctl/lab` as the lab directory. Firmware images
are local files (`file:` paths): the controller pushes them to the BMC with
Redfish's multipart HTTP push, as it would to an iDRAC that cannot reach a web
server, so the lab needs no image server. `lab_firmware_image` gives the bytes the
lab writes for each image, and the sha256 in the inventory is computed from them,
so the two can never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

_PLAIN = re.compile(r"^[A-Za-z0-9_~/.:+@-]+$")
RACK_SIZE = 8
DEFAULT_NODES = 16  # the lab `lab up` starts without --nodes, which inventories/lab.yaml describes
LAB_DIR = Path("~/.local/state/clusterctl/lab")
# Component → version: the same components as inventories/site.yaml.
FIRMWARE = {
    "iDRAC": "7.10.30.00",
    "BIOS": "2.3.5",
    "ConnectX-7": "28.41.1000",
    "HGX-H100": "24.03.1",
    "PSU": "00.1D.7D",
    "CPLD": "1.1.5",
}
# Component → version installed on every lab node: what the nodes report (clusterctl.sim.nodeio)
# and what the lab inventory pins, from this one list.
SOFTWARE = {
    "driver": "550.90.07",
    "cuda": "12.4.1",
    "nccl": "2.21.5",
    "ofed": "24.04-0.7.0.0",
    "fabricmanager": "550.90.07",
    "dcgm": "3.3.7",
}

# The installer ISO the lab inventory names, on the lab's image share (clusterctl.sim.bmc.OS_IMAGES).
LAB_OS = "Debian 12"
LAB_OS_IMAGE = "http://images.lab.internal/os/debian-12-lab.iso"


def lab_firmware_image(component: str, version: str) -> bytes:
    """The content of a lab firmware image: small, deterministic, distinct per component and version."""
    return f"clusterctl lab firmware image\ncomponent={component}\nversion={version}\n".encode()


def firmware_file_name(component: str, version: str) -> str:
    return f"{component}-{version}.EXE"  # a Windows DUP: what an iDRAC takes by upload


def write_firmware_images(lab_dir: Path) -> None:
    """The images the lab inventory points at (`file:` paths), pushed to the BMCs by multipart upload."""
    folder = lab_dir / "firmware"
    folder.mkdir(exist_ok=True)
    for component, version in FIRMWARE.items():
        (folder / firmware_file_name(component, version)).write_bytes(lab_firmware_image(component, version))


def _rack_names(racks: int) -> str:
    """lab-r01 … lab-r99, then lab-r100 …: the simulator's names, as a hostlist (one padding per range)."""
    if racks == 1:
        return "lab-r01"
    if racks <= 99:
        return f"lab-r[01-{racks:02d}]"
    return f"lab-r[01-99],lab-r[100-{racks}]"


def render_lab_inventory(nodes: int, lab_dir: Path = LAB_DIR, *, bmc_port: int = 8443, ssh_port: int = 2222,
                         names: str | None = None, os_image: bool = False) -> str:
    """The inventory YAML for a lab of `nodes` nodes (named by the hostlist `names`, else the
    lab's default) whose state lives in `lab_dir`.

    `os_image` names the OS and its installer ISO on the lab's image share, so the boot stage installs it
    where none answers (`lab up --bare`); `lab up` and inventories/lab.yaml name it. Tests leave it out
    where their inventory points SSH at a port nothing serves, which would read as a node to install.
    """
    from clusterctl.sim.fleet import MAX_NODES, default_names, lab_names

    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"the lab has between 1 and {MAX_NODES} nodes")
    if names is not None:
        lab_names(nodes, names)  # refuses a hostlist that names another count or an invalid name
    racks = math.ceil(nodes / RACK_SIZE)
    rack_names = _rack_names(racks)
    node_names = names or default_names(nodes)
    pinned = _pinned_software() | ({"os": LAB_OS, "os_image": LAB_OS_IMAGE} if os_image else {})
    software = "\n".join(f'    {component}: "{version}"' for component, version in pinned.items())
    firmware = "\n".join(
        f"    {component}:\n"
        f'      version: "{version}"\n'
        f"      image: {_quoted(f'file:{lab_dir}/firmware/{firmware_file_name(component, version)}')}\n"
        f"      sha256: {hashlib.sha256(lab_firmware_image(component, version)).hexdigest()}"
        for component, version in FIRMWARE.items()
    )
    return _TEMPLATE.format(
        nodes=nodes,
        racks=racks,
        rack_names=rack_names,
        node_names=node_names,
        lab=lab_dir,
        secrets_dir=_quoted(str(lab_dir)),
        firmware=firmware,
        software=software,
        rack_size=RACK_SIZE,
        bmc_password="file:bmc-password",  # noqa: S106 - a reference inside secrets_dir
        ca_file=_quoted(f"{lab_dir}/ca.pem"),
        ssh_key="file:ssh/id_ed25519",
        known_hosts=_quoted(f"{lab_dir}/ssh/known_hosts"),
        bmc_port=bmc_port,
        ssh_port=ssh_port,
    )


def _pinned_software() -> dict[str, str]:
    """SOFTWARE as a site pins it: CUDA by release (12.4), which any 12.4.x toolkit satisfies."""
    return {**SOFTWARE, "cuda": ".".join(SOFTWARE["cuda"].split(".")[:2])}


def _quoted(value: str) -> str:
    """Plain when YAML reads it back unchanged, else a double-quoted (JSON) string."""
    return value if _PLAIN.match(value) else json.dumps(value)


_TEMPLATE = """\
# The embedded lab: {nodes} simulated Dell PowerEdge XE9680 nodes in {racks} rack(s) of {rack_size}.
# Generated by clusterctl.sim.inventory.render_lab_inventory. `clusterctl lab up` writes the
# BMC password, CA, SSH key and firmware images under
# {lab}
# before anything reads them; `inventory check` does not need them.
version: 1
site:
  name: lab
  description: clusterctl embedded lab (simulated BMCs and nodes on loopback)
  secrets_dir: {secrets_dir}   # file: references below are inside it

defaults:
  role: compute
  bmc:
    vendor: idrac
    address_pool: 127.1.0.0/16
    port: {bmc_port}
    user: root
    password: {bmc_password}
    ca_file: {ca_file}
  ssh:
    address_pool: 127.2.0.0/16
    port: {ssh_port}
    user: clusterctl
    key: {ssh_key}
    known_hosts: {known_hosts}
  hardware:
    model: PowerEdge XE9680
    gpu: {{model: H100-SXM5-80GB, count: 8, nvlink: true}}
    infiniband: {{hcas: 8, rate_gbps: 400}}
    psus: 6
    max_power_w: 11000
  firmware:
{firmware}
  bios_profile: ai-training
  software:
{software}
  scheduler:
    slurm: {{partition: gpu}}
    kubernetes:
      labels: {{nvidia.com/gpu.product: H100-SXM5-80GB}}

bios_profiles:
  ai-training:
    description: Throughput over power saving; no SMT jitter; IOMMU passthrough for GPUDirect.
    attributes:
      LogicalProc: Disabled
      SysProfile: PerfOptimized
      ProcVirtualization: Enabled
      SriovGlobalEnable: Enabled
      NodeInterleave: Disabled

halls:
  - name: lab
    rows:
      - name: lab-row1
        racks:
          - {{name: "{rack_names}", power_budget_w: 96000, cooling_w: 100000, max_rebooting: 2}}

groups:
  - name: compute
    nodes: "{node_names}"
    racks: "{rack_names}"
    per_rack: {rack_size}
"""
