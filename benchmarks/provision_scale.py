"""Provision N simulated nodes (default 2,000) in the embedded lab and compare with the critical path.

The lab's durations are the realistic ones of clusterctl.sim.bmc (iDRAC image 240 s + 120 s reset,
BIOS 180 s, NIC 120 s, GPU 300 s, CPLD 120 s, BIOS job 60 s, POST 150 s), compressed by
--time-scale. The critical path is the shortest time any orchestrator could take under the
inventory's limits: per rack, the BMC update every node does at once, then the reboots, which at
most `at_once` nodes (max_rebooting, and the power budget at measured idle draw) may do together:

    rack bound = idrac (push verify + apply + reset) + staging
                 + max(one node's reboots, nodes x reboot work / at_once)

and the site's critical path is the largest rack bound (racks reboot independently; the run's
--concurrency is set to the node count so it adds no limit of its own). Overhead = measured
makespan in simulated seconds / critical path - 1. Orchestrator CPU = this process's CPU time
(the engine and its journal thread; the lab is another process) / wall time.

The controller's cost is BMC requests (~1 ms of CPU each through the aiohttp transport + TLS), so they are counted
(`bmc_requests_per_node`) and a progress line per stage goes to stderr: a run that stops moving shows
where. (The 2,000-node "stall in BIOS" was this: reboot waves end in lockstep across racks, and each
node then read its 32-entry FirmwareInventory one GET per entry, ~75 requests per node at once on
a CPU-starved controller; FirmwareInventory and Processors are now read with `$expand`.)

    python benchmarks/provision_scale.py --nodes 2000 --time-scale 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--time-scale", type=float, default=10.0, help="simulated seconds per real second")
    p.add_argument("--poll-interval", type=float, default=2.0, help="real seconds between BMC polls")
    p.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines on stderr (0: none)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args()




def critical_path(inventory, idle_w: float) -> dict[str, float]:  # noqa: ANN001
    """Lower bound on the makespan, in simulated seconds, from the lab's durations and the limits."""
    from clusterctl.sim.bmc import BIOS_JOB_S, COMPONENTS, IDRAC_RESET_S, POST_S, PUSH_VERIFY_S
    from clusterctl.sim.inventory import FIRMWARE

    start = {key: spec[2] for key, spec in COMPONENTS.items()}
    sim_key = {"iDRAC": "idrac", "BIOS": "bios", "ConnectX-7": "nic", "HGX-H100": "gpu", "PSU": "psu", "CPLD": "cpld"}
    behind = [sim_key[c] for c, v in FIRMWARE.items() if start[sim_key[c]] != v]
    idrac = PUSH_VERIFY_S + COMPONENTS["idrac"][3] + IDRAC_RESET_S if "idrac" in behind else 0.0
    staged = [k for k in behind if k != "idrac"]
    firmware_reboot = sum(COMPONENTS[k][3] for k in staged) + POST_S if staged else 0.0
    bios_reboot = BIOS_JOB_S + POST_S
    per_node = firmware_reboot + bios_reboot
    worst = 0.0
    for rack in inventory.racks.values():
        n = len(rack.nodes)
        at_once = rack.max_rebooting
        if rack.power_budget_w:
            extra = [inventory.nodes[x].hardware.max_power_w or 0 for x in rack.nodes]
            at_once = min(at_once, max(1, int((rack.power_budget_w - n * idle_w) // max(max(extra) - idle_w, 1))))
        bound = idrac + PUSH_VERIFY_S + max(per_node, n * per_node / at_once)
        worst = max(worst, bound)
    return {"critical_path_s": worst, "per_node_reboot_work_s": per_node, "idrac_s": idrac,
            "first_reboot_s": idrac + PUSH_VERIFY_S, "reboot_s": {"firmware": firmware_reboot, "bios": bios_reboot}}


def where_it_went(inventory, scale: float, bound: dict) -> dict[str, float]:  # noqa: ANN001
    """Where the makespan exceeds the critical path, read back from the journal (simulated seconds):
    how late each rack's first reboot started, how long after its nominal end each reboot was seen
    done, and how long a freed reboot slot stayed empty before the next reset."""
    import statistics

    from clusterctl.state.store import Store

    store = Store.open(os.environ["CLUSTERCTL_STATE"])
    try:
        events = store.events(0)
    finally:
        store.close()
    t0 = events[0].ts
    rack_of = {name: node.rack for name, node in inventory.nodes.items()}
    started: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    lags: dict[str, list[float]] = {"firmware": [], "bios": []}
    for e in events:
        if not e.node or not isinstance(e.payload, dict) or e.payload.get("key") != "reboot":
            continue
        t = (e.ts - t0) * scale
        if e.kind.endswith(".intent"):
            started[e.node] = t
        elif e.kind.endswith(".outcome") and e.node in started:
            begin = started.pop(e.node)
            spans.setdefault(rack_of[e.node], []).append((begin, t))
            if e.stage in lags:
                lags[e.stage].append(t - begin - bound["reboot_s"][e.stage])
    gaps = []
    for rack_spans in spans.values():
        ends = sorted(end for _, end in rack_spans)
        for begin, _ in sorted(rack_spans)[2:]:
            before = [end for end in ends if end <= begin]
            if before:
                gaps.append(begin - before[-1])
    firsts = [min(b for b, _ in rack_spans) for rack_spans in spans.values()]
    return {
        "first_reboot_late_s": round(statistics.median(firsts) - bound["first_reboot_s"], 1) if firsts else 0.0,
        "firmware_reboot_seen_late_s": round(statistics.median(lags["firmware"]), 1) if lags["firmware"] else 0.0,
        "bios_reboot_seen_late_s": round(statistics.median(lags["bios"]), 1) if lags["bios"] else 0.0,
        "slot_handoff_s": round(statistics.median(gaps), 1) if gaps else 0.0,
    }


def start_lab(work: Path, nodes: int, time_scale: float) -> tuple[subprocess.Popen[bytes], Path]:
    """The lab as its own process (as `lab up` starts it), and its inventory on a free port."""
    from clusterctl.sim.inventory import render_lab_inventory, write_firmware_images
    from tests.support.ports import free_port

    lab_dir = work / "lab"
    lab_dir.mkdir(parents=True, mode=0o700)
    write_firmware_images(lab_dir)
    port = free_port("127.1.0.1", 20000, 45000)
    log = open(work / "sim.log", "wb")  # noqa: SIM115 - the process keeps it
    lab = subprocess.Popen(
        [sys.executable, "-m", "clusterctl.sim", "--lab-dir", str(lab_dir), "--nodes", str(nodes),
         "--port", str(port), "--latency-ms", "0", "--time-scale", str(time_scale), "--ssh-port", "0"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 120
    while not (lab_dir / "lab.json").exists():
        if lab.poll() is not None or time.monotonic() > deadline:
            stop_lab(lab)
            raise SystemExit(f"the lab did not start: {(work / 'sim.log').read_text()[-2000:]}")
        time.sleep(0.1)
    inventory_file = work / "bench-inventory.yaml"
    inventory_file.write_text(render_lab_inventory(nodes, lab_dir, bmc_port=port))
    return lab, inventory_file


def stop_lab(lab: subprocess.Popen[bytes]) -> float:
    """Stop the lab; returns its CPU seconds (user + system), read before it exits."""
    from tests.support.process import cpu_seconds, terminate

    cpu = 0.0
    with contextlib.suppress(OSError, IndexError, ValueError):
        cpu = cpu_seconds(lab.pid)
    terminate(lab, kill_timeout=5)
    return cpu


PEAK_IN_FLIGHT = [0]


async def watch(tracker, every_s: float) -> None:  # noqa: ANN001
    """Progress on stderr: per stage, how many nodes are running and done (shows where a run stalls), and
    the nodes in flight (a stage running), sampled every 0.2 s for the peak."""
    started = last = time.monotonic()
    while True:
        await asyncio.sleep(0.2)
        in_flight = sum(c.get("running", 0) for c in tracker.counts.values())
        PEAK_IN_FLIGHT[0] = max(PEAK_IN_FLIGHT[0], in_flight)
        if every_s <= 0 or time.monotonic() - last < every_s:
            continue
        last = time.monotonic()
        parts = [f"{s}: {c.get('running', 0)}r/{c.get('done', 0) + c.get('skipped', 0)}d/{c.get('failed', 0)}f"
                 for s, c in tracker.counts.items()]
        print(f"[{last - started:6.0f} s] in flight {in_flight} (peak {PEAK_IN_FLIGHT[0]})  " + "  ".join(parts),
              file=sys.stderr, flush=True)


REQUESTS = [0]
KINDS: dict[str, int] = {}


def counting_transport(target):  # noqa: ANN001, ANN201
    """The transport RedfishClient builds for `target` (aiohttp underneath), counting the requests it sends."""
    from clusterctl.redfish.transport import AiohttpTransport

    class Counting(AiohttpTransport):
        async def handle_async_request(self, request):  # noqa: ANN001, ANN202
            REQUESTS[0] += 1
            kind = request.method + " " + re.sub(r"\d+", "N", request.url.path)
            KINDS[kind] = KINDS.get(kind, 0) + 1
            return await super().handle_async_request(request)

    return Counting(verify=target.ssl_context(), max_connections=4)


async def provision(inventory, options, progress_s: float):  # noqa: ANN001, ANN201
    from clusterctl.provision.engine import Engine, Tracker
    from clusterctl.state.store import Store

    nodes = inventory.select(None)
    tracker = Tracker(options.stages, len(nodes))
    store = Store.open(os.environ["CLUSTERCTL_STATE"])
    watcher = asyncio.ensure_future(watch(tracker, progress_s))
    try:
        engine = Engine(inventory, store, options, tracker=tracker, transport_for=counting_transport)
        return await engine.run(nodes)
    finally:
        watcher.cancel()
        store.close()


def main() -> int:
    args = parse()
    work = Path(tempfile.mkdtemp(prefix="clusterctl-bench-"))
    os.environ["HOME"] = str(work)
    os.environ["CLUSTERCTL_LAB_DIR"] = str(work / "lab")
    os.environ["CLUSTERCTL_STATE"] = f"sqlite:///{work / 'state.db'}"
    from clusterctl.eventloop import run
    from clusterctl.inventory import load_inventory
    from clusterctl.provision.context import Tuning
    from clusterctl.provision.engine import Options
    from clusterctl.sim.node import GPU_COUNT, GPU_IDLE_W

    load = os.getloadavg()[0]
    lab, inventory_file = start_lab(work, args.nodes, args.time_scale)
    lab_cpu = 0.0
    try:
        inventory = load_inventory(inventory_file)
        tuning = Tuning(poll_s=args.poll_interval, job_deadline_s=3600, reboot_deadline_s=3600,
                        request_timeout_s=60, stage_retry_wait_s=args.poll_interval)
        options = Options(stages=("discover", "firmware", "bios"), concurrency=args.nodes,
                          global_requests=512, tuning=tuning)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.monotonic()
        summary = run(provision(inventory, options, args.progress))
        wall = time.monotonic() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        lab_cpu = stop_lab(lab)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    idle_w = 1400 + GPU_COUNT * GPU_IDLE_W  # the lab's idle draw, as discover measures it
    bound = critical_path(inventory, idle_w)
    makespan = wall * args.time_scale
    figures = {
        "nodes": args.nodes,
        "ready": len(summary.ready),
        "failed": len(summary.failed),
        "time_scale": args.time_scale,
        "poll_interval_s": args.poll_interval,
        "wall_s": round(wall, 1),
        "makespan_sim_s": round(makespan, 1),
        "critical_path_sim_s": round(bound["critical_path_s"], 1),
        "overhead_pct": round(100 * (makespan / bound["critical_path_s"] - 1), 2),
        "orchestrator_cpu_s": round(cpu, 1),
        "orchestrator_cores": round(cpu / wall, 3),
        "lab_cpu_s": round(lab_cpu, 1),
        "bmc_requests": REQUESTS[0],
        "bmc_requests_per_node": round(REQUESTS[0] / max(1, args.nodes), 1),
        "requests_per_node_by_kind": {k: round(v / max(1, args.nodes), 1)
                                      for k, v in sorted(KINDS.items(), key=lambda kv: -kv[1])[:24]},
        "store_commits": summary.commits,
        "peak_in_flight": PEAK_IN_FLIGHT[0],
        "rebooting_limit": sum(r.max_rebooting for r in inventory.racks.values()),
        "medians_sim_s": where_it_went(inventory, args.time_scale, bound),
        "load_avg_before": round(load, 2),
        "poll_granularity_sim_s": args.poll_interval * args.time_scale,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>24}: {value}")
        print(f"{'goal':>24}: overhead <= 5% ({'met' if figures['overhead_pct'] <= 5 else 'NOT met'}), "
              f"CPU < 1 core ({'met' if figures['orchestrator_cores'] < 1 else 'NOT met'})")
    if summary.failed:
        for node, (stage, reason) in list(summary.failed.items())[:5]:
            print(f"failed {node} at {stage}: {reason}", file=sys.stderr)
    return 0 if not summary.failed and math.isfinite(figures["overhead_pct"]) else 1


if __name__ == "__main__":
    sys.exit(main())
