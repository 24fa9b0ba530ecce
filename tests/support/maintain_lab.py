"""New targets written into a lab inventory, as an operator edits a site's inventory for a day-2 change."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from clusterctl.sim.inventory import firmware_file_name, lab_firmware_image


def retarget_firmware(inventory: Path, lab_dir: Path, component: str, version: str) -> None:
    """A new firmware target in the inventory, with its image written where the lab's images are."""
    name = firmware_file_name(component, version)
    image = lab_firmware_image(component, version)
    (lab_dir / "firmware" / name).write_bytes(image)
    text = inventory.read_text()
    block = re.compile(rf"(    {re.escape(component)}:\n)(      version: .*\n)(      image: .*\n)(      sha256: .*\n)")
    assert block.search(text), f"{component} is not in the inventory"
    text = block.sub(lambda m: (f'{m[1]}      version: "{version}"\n'
                                f"      image: file:{lab_dir}/firmware/{name}\n"
                                f"      sha256: {hashlib.sha256(image).hexdigest()}\n"), text)
    inventory.write_text(text)


def retarget_software(inventory: Path, component: str, version: str) -> None:
    text = inventory.read_text()
    pattern = re.compile(rf'(\n    {re.escape(component)}: )"[^"]*"')
    assert pattern.search(text), f"software.{component} is not in the inventory"
    inventory.write_text(pattern.sub(lambda m: f'{m[1]}"{version}"', text, count=1))


def lab_servers(directory: Path) -> dict[str, dict]:
    """Each lab server's report (firmware installed, images applied...) from the lab's control API."""
    from clusterctl.sim.process import control, running

    info = running(directory)
    assert info is not None, "the lab is not running"
    return {s["node"]: s for s in control(directory, info, "GET", "/status")["servers"]}


CHANGES = ("firmware", "firmware_applied", "bios_changes", "bios_pending", "resets", "images_pushed", "jobs")


def lab_changes(directory: Path) -> dict[str, dict]:
    """What a change to the servers would show (firmware, BIOS, resets, jobs), without the counters that move
    on any read (sessions)."""
    return {node: {k: s.get(k) for k in CHANGES} for node, s in lab_servers(directory).items()}


def without_scheduler(inventory: Path) -> Path:
    """The lab inventory with no scheduler: maintain takes its nodes directly."""
    text = inventory.read_text()
    stripped = re.sub(r"  scheduler:\n(    .*\n)+", "", text)
    assert stripped != text
    inventory.write_text(stripped)
    return inventory


FAST = ["--poll-interval", "0.05", "--request-timeout", "5", "--job-timeout", "20", "--reboot-timeout", "20"]


def wait_running(cluster: Any, job: str, timeout_s: float = 30.0) -> None:
    """Until Slurm runs the job (a drain of a node whose job is still pending would wait for nothing)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cluster.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING":
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not start within {timeout_s} s")


def retarget_software_on(inventory: Path, nodes: str, **versions: str) -> None:
    """New software targets for some nodes only (a group override for the pattern `nodes`), as a site moves a
    few nodes to a new driver first."""
    text = inventory.read_text()
    lines = "".join(f'        {component}: "{version}"\n' for component, version in versions.items())
    marked = re.sub(r"(\n    per_rack: [0-9]+\n)", lambda m: f'{m[1]}    overrides:\n      "{nodes}":\n'
                    f"        software:\n{lines.replace('        ', '          ')}", text, count=1)
    assert marked != text, "the lab inventory's group has no per_rack line"
    inventory.write_text(marked)


def peak_out_of_service(store: Any, run_id: int | None = None) -> tuple[int, float]:
    """(most nodes held out of service at one instant, when) over the rollout's `maintain.*` events: a node is
    out from its `draining` (written before the drain) until its `resumed` or `skipped` (written after the
    resume). Every instant counts, not samples: the events bound what the nodes went through."""
    from clusterctl.maintain import ledger

    changes: list[tuple[float, int]] = []
    out: dict[str, float] = {}
    for e in store.events(0, stage=ledger.STAGE):
        if e.node is None or (run_id is not None and e.run_id != run_id):
            continue
        state = e.kind[len(ledger.PREFIX):]
        if state == "draining" and e.node not in out:
            out[e.node] = e.ts
            changes.append((e.ts, 1))
        elif state in ("resumed", "skipped") and e.node in out:
            out.pop(e.node)
            changes.append((e.ts, -1))
    peak, at, now = 0, 0.0, 0
    for ts, step in sorted(changes, key=lambda c: (c[0], c[1])):  # at the same instant, a return first
        now += step
        if now > peak:
            peak, at = now, ts
    return peak, at


SIM_KEY = {"iDRAC": "idrac", "BIOS": "bios", "ConnectX-7": "nic", "HGX-H100": "gpu", "PSU": "psu", "CPLD": "cpld"}
"""The lab inventory's firmware components -> the simulator's names for them (clusterctl.sim.bmc.COMPONENTS)."""


def at_shipped_firmware(inventory: Path, lab_dir: Path) -> Path:
    """The lab inventory with every firmware target at what the lab's servers ship and no BIOS profile: no
    drift at all, so a test's own retargets are the whole change (a site's day-2 change is one or two items,
    not every component at once)."""
    from clusterctl.sim.bmc import COMPONENTS

    inventory.write_text(re.sub(r"  bios_profile: .*\n", "", inventory.read_text()))
    for component, key in SIM_KEY.items():
        retarget_firmware(inventory, lab_dir, component, COMPONENTS[key][2])
    return inventory
