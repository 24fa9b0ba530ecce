"""A site-sized lab: one lab process per hall, each on its own BMC and SSH networks, one inventory.

One lab process holds two listening sockets per node (its BMC and its SSH server), and a process
may open at most `ulimit -Hn` files (20,000 on the machines this runs on), so 12,500 nodes do not
fit one process; they fit two, and a real site of that size has one management network per hall
too. Each hall is an ordinary lab (clusterctl.sim.process) in its own directory under `root`,
serving its nodes (`h1-gpu0001`..) on its own addresses: hall h's BMCs are 127.(2h-1).0.x and
its SSH nodes 127.(2h).0.x. The halls share one CA, BMC password, SSH client key and host-key seed
(copied from the first hall before the others start), so the site inventory names one of each,
and its groups give each hall its own address pools. Commands see one site behind the same
transports as any other; nothing in them knows about halls.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from clusterctl.sim import labdir, process
from clusterctl.sim.fleet import HALL_NODES, NODES_PER_RACK
from clusterctl.sim.inventory import render_lab_inventory

SHARED = ("ca.pem", "ca-key.pem", labdir.PASSWORD_FILE, "ssh/id_ed25519", "ssh/id_ed25519.pub",
          "ssh/host-key-seed")
INVENTORY = "site.yaml"
KNOWN_HOSTS = "known_hosts"


def hall_sizes(nodes: int, per_hall: int = HALL_NODES) -> list[int]:
    halls = math.ceil(nodes / per_hall)
    return [min(per_hall, nodes - h * per_hall) for h in range(halls)]


def hall_dir(root: Path, hall: int) -> Path:
    return root / f"hall{hall}"


def up(root: Path, nodes: int, *, per_hall: int = HALL_NODES, time_scale: float = 60.0, latency_ms: float = 50.0,
       port: int = 8443, ssh_port: int = 2222) -> tuple[Path, list[dict[str, Any]]]:
    """Start (or find running) one lab per hall; returns the site inventory and each hall's summary."""
    labdir.ensure_lab_dir(root)
    summaries = []
    sizes = hall_sizes(nodes, per_hall)
    for hall, count in enumerate(sizes, 1):
        folder = labdir.ensure_lab_dir(hall_dir(root, hall))
        if hall > 1:
            _share_secrets(hall_dir(root, 1), folder)
        summary, _already = process.up(
            folder, nodes=count, faults=None, time_scale=time_scale, latency_ms=latency_ms, port=port,
            ssh_port=ssh_port, names=f"h{hall}-gpu[0001-{count:04d}]" if count > 1 else f"h{hall}-gpu0001",
            base_address=f"127.{2 * hall - 1}.0.0", ssh_base_address=f"127.{2 * hall}.0.0")
        summaries.append(summary)
    known_files = [hall_dir(root, h) / "ssh" / "known_hosts" for h in range(1, len(sizes) + 1)]
    known = "".join(f.read_text() for f in known_files if f.exists())  # none with SSH off (ssh_port 0)
    labdir.write_private(root / KNOWN_HOSTS, known)
    path = root / INVENTORY
    # SSH off (ssh_port 0): the inventory names the usual port, as process.write_inventory does for one lab.
    path.write_text(render_site_inventory(root, sizes, port=port, ssh_port=ssh_port or 2222))
    return path, summaries


def down(root: Path) -> int:
    """Stop every hall's lab; returns how many were running."""
    stopped = 0
    for folder in sorted(root.glob("hall*")):
        stopped += process.stop(folder)[0]
    return stopped


def _share_secrets(first: Path, other: Path) -> None:
    (other / "ssh").mkdir(mode=0o700, exist_ok=True)
    for name in SHARED:
        src, dst = first / name, other / name
        if src.exists() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
            shutil.copyfile(src, dst)
            dst.chmod(0o600 if not name.endswith(("ca.pem", ".pub")) else 0o644)


def render_site_inventory(root: Path, sizes: list[int], *, port: int, ssh_port: int) -> str:
    """The lab inventory's site settings (the first hall's secrets) with one hall and group per lab."""
    total = sum(sizes)
    names = ",".join(f"h{h}-gpu[0001-{n:04d}]" if n > 1 else f"h{h}-gpu0001" for h, n in enumerate(sizes, 1))
    head = render_lab_inventory(total, hall_dir(root, 1), bmc_port=port, ssh_port=ssh_port, names=names)
    head = head.split("\nhalls:", 1)[0].replace(str(hall_dir(root, 1) / "ssh" / "known_hosts"),
                                                 str(root / KNOWN_HOSTS))
    halls, groups = ["halls:"], ["groups:"]
    for h, n in enumerate(sizes, 1):
        racks = math.ceil(n / NODES_PER_RACK)
        rack_names = f"h{h}-r[0001-{racks:04d}]" if racks > 1 else f"h{h}-r0001"
        node_names = f"h{h}-gpu[0001-{n:04d}]" if n > 1 else f"h{h}-gpu0001"
        halls += [f"  - name: h{h}", "    rows:", f"      - name: h{h}-row1", "        racks:",
                  f'          - {{name: "{rack_names}", power_budget_w: 96000, cooling_w: 100000, max_rebooting: 2}}']
        groups += [f"  - name: h{h}", f'    nodes: "{node_names}"', f'    racks: "{rack_names}"',
                   f"    per_rack: {NODES_PER_RACK}", f"    bmc: {{address_pool: 127.{2 * h - 1}.0.0/16}}",
                   f"    ssh: {{address_pool: 127.{2 * h}.0.0/16}}"]
    return head + "\n" + "\n".join(halls) + "\n\n" + "\n".join(groups) + "\n"
