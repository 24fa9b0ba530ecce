"""A rolling firmware change on N lab nodes (default 2,000) against its lower bound.

The lab's servers start on their shipped firmware; the inventory pins exactly those versions except
the HGX GPU firmware (23.10.2 -> 24.03.1) and names no BIOS attributes, so every node has one change.
Each node goes through `maintain` as an operator runs it, taken directly (no scheduler): update
(firmware stage: push, apply 300 s, reboot), validate over the lab's SSH, resume; no burn-in
(--burnin-minutes 0), whose fixed minutes would only add the same to both sides.

    one node's critical path  t1 = in a rollout of the first node alone, that node's time out of service, from
                                   its `maintain.draining` to its `maintain.resumed` event (the same stages as
                                   every other node; the rollout's own start and finish are not a node's path)
    lower bound                  = ceil((N - 1) / width) x t1, width = --max-unavailable of N
    ratio                        = the rollout of the other N - 1 nodes, start to end / lower bound  (goal: <= 1.15)

Where the rest goes is printed beside it: the time before the first node starts (its drift read), the nodes'
mean path in the fleet against t1 (contention, waits for the other nodes of the group a node started with),
and how full the width was kept between the first drain and the last resume (time between a node's return
and the next start).

    python benchmarks/maintain_scale.py --nodes 2000 --time-scale 20

The issue's lab case, a firmware change on all and a driver change on a few (their os stage runs the real
playbooks through ansible-runner, seconds of CPU per node), the floor checked at every instant from the events:

    python benchmarks/maintain_scale.py --nodes 1000 --max-unavailable 5% --driver-nodes 4 --time-scale 2000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(path))

SIM_KEY = {"iDRAC": "idrac", "BIOS": "bios", "ConnectX-7": "nic", "HGX-H100": "gpu", "PSU": "psu", "CPLD": "cpld"}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--max-unavailable", default="10%")
    p.add_argument("--time-scale", type=float, default=20.0, help="simulated seconds per real second")
    p.add_argument("--poll-interval", type=float, default=1.0, help="real seconds between BMC polls")
    p.add_argument("--driver-nodes", type=int, default=0,
                   help="also move this many nodes (spread over the fleet) to a new driver")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args()


def start_lab(work: Path, nodes: int, time_scale: float) -> tuple[subprocess.Popen[bytes], Path]:
    """The lab as its own process with SSH, and an inventory whose only drift is the HGX firmware."""
    from support.maintain_lab import retarget_firmware, without_scheduler
    from support.ports import free_port

    from clusterctl.sim.bmc import COMPONENTS
    from clusterctl.sim.inventory import render_lab_inventory, write_firmware_images

    lab_dir = work / "lab"
    lab_dir.mkdir(parents=True, mode=0o700)
    write_firmware_images(lab_dir)
    port, ssh_port = free_port("127.1.0.1", 20000, 45000), free_port("127.2.0.1")
    with open(work / "sim.log", "wb") as log:
        lab = subprocess.Popen(
            [sys.executable, "-m", "clusterctl.sim", "--lab-dir", str(lab_dir), "--nodes", str(nodes),
             "--port", str(port), "--latency-ms", "0", "--time-scale", str(time_scale),
             "--ssh-port", str(ssh_port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (lab_dir / "lab.json").exists():
        if lab.poll() is not None or time.monotonic() > deadline:
            lab.kill()
            raise SystemExit(f"the lab did not start: {(work / 'sim.log').read_text()[-2000:]}")
        time.sleep(0.2)
    inventory = work / "maintain-inventory.yaml"
    inventory.write_text(re.sub(r"  bios_profile: .*\n", "",
                                render_lab_inventory(nodes, lab_dir, bmc_port=port, ssh_port=ssh_port)))
    without_scheduler(inventory)
    for component, key in SIM_KEY.items():
        if component != "HGX-H100":
            retarget_firmware(inventory, lab_dir, component, COMPONENTS[key][2])
    return lab, inventory


def rollout(inventory_file: Path, limit: str | None, max_unavailable: str, poll: float) -> tuple[float, dict]:
    from clusterctl.eventloop import run
    from clusterctl.inventory import load_inventory
    from clusterctl.maintain.floor import parse_count
    from clusterctl.maintain.rollout import MaintainOptions, Rollout
    from clusterctl.provision.context import Tuning
    from clusterctl.state.store import Store

    inventory = load_inventory(inventory_file)
    nodes = inventory.select(limit)
    tuning = Tuning(poll_s=poll, job_deadline_s=3600, reboot_deadline_s=3600, request_timeout_s=60,
                    stage_retry_wait_s=poll)
    options = MaintainOptions(max_unavailable=max_unavailable, burnin_minutes=0, poll_s=poll,
                              concurrency=max(64, parse_count(max_unavailable, len(inventory.nodes), "")),
                              tuning=tuning)
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        began, started = time.time(), time.monotonic()
        report = run(Rollout(inventory, store, options, announce=lambda m: print(m, file=sys.stderr)).run(nodes))
        return time.monotonic() - started, {**report.as_dict(), "began": began}


def paths(store: object, run_id: int) -> dict[str, tuple[float, float]]:
    """{node: (its draining, its resumed)} in a rollout, from the events (wall-clock seconds)."""
    from clusterctl.maintain import ledger

    began: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for e in store.events(0, stage=ledger.STAGE, run_id=run_id):  # type: ignore[attr-defined]
        if e.kind == ledger.PREFIX + "draining" and e.node not in began:
            began[e.node] = e.ts
        elif e.kind == ledger.PREFIX + "resumed" and e.node in began:
            out[e.node] = (began[e.node], e.ts)
    return out


def main() -> int:
    args = parse()
    work = Path(tempfile.mkdtemp(prefix="clusterctl-maintain-bench-"))
    os.environ["HOME"] = str(work)
    os.environ["CLUSTERCTL_STATE"] = f"sqlite:///{work / 'state.db'}"
    from clusterctl.maintain.floor import parse_count
    from clusterctl.sim.fleet import node_name

    lab, inventory = start_lab(work, args.nodes, args.time_scale)
    driver_nodes = [node_name(i * args.nodes // args.driver_nodes + args.nodes // (2 * args.driver_nodes))
                    for i in range(args.driver_nodes)
                    ] if args.driver_nodes else []
    if driver_nodes:
        from support.maintain_lab import retarget_software_on

        pattern = ",".join(driver_nodes)
        retarget_software_on(inventory, pattern, driver="550.127.05", fabricmanager="550.127.05")
    try:
        t1, one = rollout(inventory, node_name(0), args.max_unavailable, args.poll_interval)
        rest = node_name(1) if args.nodes == 2 else f"gpu[{node_name(1)[3:]}-{node_name(args.nodes - 1)[3:]}]"
        wall, report = rollout(inventory, rest, args.max_unavailable, args.poll_interval)
    finally:
        lab.terminate()
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
    width = parse_count(args.max_unavailable, args.nodes, "--max-unavailable")
    from support.maintain_lab import peak_out_of_service

    from clusterctl.state.store import Store

    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        peak, _ = peak_out_of_service(store, report["run"])
        path = paths(store, one["run"])
        fleet = paths(store, report["run"])
    ((began_1, ended_1),) = path.values()
    path_1 = ended_1 - began_1
    bound = math.ceil((args.nodes - 1) / width) * path_1
    first, last = min(s for s, _ in fleet.values()), max(e for _, e in fleet.values())
    spent = [e - s for s, e in fleet.values()]
    figures = {
        "nodes": args.nodes, "max_unavailable": width, "time_scale": args.time_scale,
        "one_node_path_s": round(path_1, 2), "one_node_rollout_s": round(t1, 2),
        "one_node_resumed": len(one["resumed"]),
        "rollout_s": round(wall, 1), "resumed": len(report["resumed"]), "failed": len(report["failed"]),
        "skipped": len(report["skipped"]), "first_start_s": round(first - report["began"], 1),
        "observe_s": round(report["observe_s"], 1), "read_s": round(report.get("read_s", 0.0), 1),
        "fleet_path_mean_s": round(sum(spent) / len(spent), 2), "fleet_path_max_s": round(max(spent), 2),
        "width_used": round(sum(spent) / (width * (last - first)), 3) if last > first else None,
        "peak_unavailable": report["peak_unavailable"], "peak_from_events": peak, "driver_nodes": len(driver_nodes),
        "lower_bound_s": round(bound, 1), "ratio": round(wall / bound, 3),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    return 0 if report["resumed"] and not report["failed"] and not report["skipped"] and peak <= width else 1


if __name__ == "__main__":
    sys.exit(main())
