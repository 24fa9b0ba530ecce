"""Provision N simulated nodes (default 2,000) in the embedded lab and compare with the critical path.

The lab's durations are the realistic ones of clusterctl.sim.bmc (iDRAC image 240 s + 120 s reset,
BIOS 180 s, NIC 120 s, GPU 300 s, CPLD 120 s, BIOS job 60 s, POST 150 s), compressed by
--time-scale. The critical path is the shortest time any orchestrator could take under the
inventory's limits: per rack, the BMC update every node does at once, then the reboots, which at
most `at_once` nodes (max_rebooting, and the power budget at measured idle draw) may do together:

    rack bound = idrac (push verify + apply + reset) + staging
                 + max(one node's reboots, nodes x reboot work / at_once)

and the site's critical path is the largest rack bound (racks reboot independently; the run's
--concurrency is set to the node count so it adds no limit of its own). Overhead = makespan in
simulated seconds / critical path - 1, the makespan being the store's runs, from the first one's
start to the last one's end (a controller process's interpreter start and inventory load are not
in it; its wall time beside it is). Per stage, the journal gives when the first node started it,
when the last finished it and the median node's time in it.

One controller (the default) is the engine in this process, on SQLite: its CPU is this process's
(the engine and its journal thread; the lab is another process), and its BMC requests are counted
(`bmc_requests_per_node`; ~1 ms of CPU each through the aiohttp transport + TLS), with a progress
line per stage on stderr, so a run that stops moving shows where. (The 2,000-node "stall in BIOS"
was this: reboot waves end in lockstep across racks, and each node then read its 32-entry
FirmwareInventory one GET per entry, ~75 requests per node at once on a CPU-starved controller;
FirmwareInventory and Processors are now read with `$expand`.)

`--controllers N` runs N `clusterctl provision` processes at once on the same inventory and store,
by default a throwaway PostgreSQL started the way the store tests start theirs
(tests/support/pgserver.py: initdb in a temporary directory, loopback only, a watchdog that stops
it if this process dies). They split the nodes through per-node leases (clusterctl/state/
node_leases.py: work-stealing, each node done by one), each with --concurrency nodes / N: a
controller takes nodes as its places allow, so with room for the whole fleet the first one's first
claim would take every node and the others would only wait. Each one's CPU (user + system) and peak RSS
come from os.wait4 as it ends, with the nodes it brought to ready; PostgreSQL's CPU (the
postmaster and its ended backends) is shown beside the lab's. The goal is the same overhead, with
each controller below one core.

Past 9,999 nodes the lab names nodes per hall and serves them from one process per hall
(clusterctl.sim.halls, as benchmarks/site_scale.py starts it): one process cannot hold a socket
for each of 12,500 BMCs and answer them all on one core.

Where the goal is missed (`gap_sim_s`, on the rack that ended last; measured Dec 3 on the shared
2-core machine, 400 nodes, load 6-15): its first reboot starts 120-380 s after the bound (every
node's discover and BMC image at once, the start-of-run burst, stretched by the machine's load),
its slots stand idle ~200-480 s per slot (a node holds a slot three times, reboot, AC cycle and
BIOS reboot, and between them waits for its BMC's Lifecycle Controller, while the rack's other
nodes may not be ready), and each reboot is seen done a few seconds late (polling). With two
controllers each holds half of every rack: a slot freed by one is seen by the other at its next
store poll (`SharedSlots.poll_s`, <= 2 s), while its own waiters are woken at once, so one
controller's nodes go first. The controller's CPU is ~0.22 s a node (1 controller; ~137 BMC
requests, ~1.6 ms each all told) and ~0.32 s (2 controllers, together): 12,500 nodes at
--time-scale 10 would need ~4 cores, so on 2 cores that run measures CPU starvation, not the
orchestrator. A slower time scale alone does not help: polls (system power state, LC status,
jobs: ~75 of the ~137 requests) come every --poll-interval real seconds while a node waits.
2,000 nodes, 2 controllers on PostgreSQL (load 3-10): 40% over the bound; first reboot 1,033 s
late (discover's median node took 220 s), reboots seen 476 s late in all, slots idle 835 s per
slot; 0.27 cores and 320 MiB per controller, the lab 269 CPU s and PostgreSQL 22 CPU s beside
their 443: the machine's 2 cores, shared with other work, are the bottleneck, not the leases.

    python benchmarks/provision_scale.py --nodes 2000 --time-scale 10
    python benchmarks/provision_scale.py --nodes 2000 --controllers 2
    python benchmarks/provision_scale.py --nodes 12500
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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

STAGES = ("discover", "firmware", "bios")
TICKS = os.sysconf("SC_CLK_TCK")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--time-scale", type=float, default=10.0, help="simulated seconds per real second")
    p.add_argument("--poll-interval", type=float, default=2.0, help="real seconds between BMC polls")
    p.add_argument("--controllers", type=int, default=1,
                   help="clusterctl provision processes sharing the nodes (1: the engine in this process)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default=None,
                   help="the state store (default: sqlite for one controller, postgresql for more)")
    p.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines on stderr (0: none)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    if args.nodes < 1 or args.controllers < 1:
        p.error("--nodes and --controllers must be at least 1")
    args.store = args.store or ("sqlite" if args.controllers == 1 else "postgresql")
    return args


def critical_path(inventory, time_scale: float) -> dict[str, float]:  # noqa: ANN001
    """Lower bound on the makespan, in simulated seconds, from the lab's durations and the limits, for the
    pipeline's order (BMC image, the other images staged for one reboot, the AC cycle the HGX and CPLD
    images wait for, then the BIOS job's reboot). After each iDRAC restart (its own image, the AC cycle)
    the Lifecycle Controller takes no update or job until it has collected inventory (LC_SETTLE_S).
    Racks are judged at the lab's idle draw, as discover measures it."""
    from clusterctl.sim.bmc import (
        AC_CYCLE_COMPONENTS,
        AC_CYCLE_S,
        BIOS_JOB_S,
        COMPONENTS,
        IDRAC_RESET_S,
        LC_SETTLE_REAL_S,
        LC_SETTLE_S,
        POST_S,
        PUSH_VERIFY_S,
    )
    from clusterctl.sim.inventory import FIRMWARE
    from clusterctl.sim.node import GPU_COUNT, GPU_IDLE_W

    idle_w = 1400 + GPU_COUNT * GPU_IDLE_W
    start = {key: spec[2] for key, spec in COMPONENTS.items()}
    sim_key = {"iDRAC": "idrac", "BIOS": "bios", "ConnectX-7": "nic", "HGX-H100": "gpu", "PSU": "psu", "CPLD": "cpld"}
    behind = [sim_key[c] for c, v in FIRMWARE.items() if start[sim_key[c]] != v]
    lc_settle = max(LC_SETTLE_S, LC_SETTLE_REAL_S * time_scale)
    idrac = PUSH_VERIFY_S + COMPONENTS["idrac"][3] + IDRAC_RESET_S + lc_settle if "idrac" in behind else 0.0
    staged = [k for k in behind if k != "idrac"]
    firmware_reboot = sum(COMPONENTS[k][3] for k in staged) + POST_S if staged else 0.0
    ac_cycle = AC_CYCLE_S + POST_S if set(staged) & set(AC_CYCLE_COMPONENTS) else 0.0
    bios_reboot = BIOS_JOB_S + POST_S
    per_node = firmware_reboot + ac_cycle + bios_reboot  # time a node holds a reboot slot
    # One node alone: after the AC cycle its BIOS job waits for the LC, which starts when the iDRAC is back.
    chain = per_node + (max(0.0, AC_CYCLE_S + lc_settle - ac_cycle) if ac_cycle else 0.0)
    worst = 0.0
    slots = {}
    for rack in inventory.racks.values():
        n = len(rack.nodes)
        at_once = rack.max_rebooting
        if rack.power_budget_w:
            extra = [inventory.nodes[x].hardware.max_power_w or 0 for x in rack.nodes]
            at_once = min(at_once, max(1, int((rack.power_budget_w - n * idle_w) // max(max(extra) - idle_w, 1))))
        bound = idrac + PUSH_VERIFY_S + max(chain, n * per_node / at_once)
        worst = max(worst, bound)
        slots[rack.name] = at_once
    return {"critical_path_s": worst, "per_node_reboot_work_s": per_node, "idrac_s": idrac,
            "first_reboot_s": idrac + PUSH_VERIFY_S, "slots": slots,
            "reboot_s": {"firmware": firmware_reboot, "bios": bios_reboot, "ac_cycle": ac_cycle}}


def where_it_went(events, inventory, scale: float, bound: dict) -> dict[str, Any]:  # noqa: ANN001
    """Where the makespan exceeds the critical path, read back from the journal (simulated seconds):
    how late each rack's first reboot started, how long after its nominal end each reboot was seen
    done, and how long a freed reboot slot stayed empty before the next reset (or AC cycle). For the
    rack that ended last: when its first reboot began, how long its slots were busy and idle (each
    per slot: the sum over its nodes / the reboots it may run at once), and when its last one ended."""
    t0 = events[0].ts
    rack_of = {name: node.rack for name, node in inventory.nodes.items()}
    started: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    lags: dict[str, list[float]] = {"firmware": [], "bios": [], "ac_cycle": []}
    for e in events:
        if not e.node or not isinstance(e.payload, dict) or e.payload.get("key") not in ("reboot", "ac_cycle"):
            continue
        t = (e.ts - t0) * scale
        if e.kind.endswith(".intent"):
            started[e.node] = t
        elif e.kind.endswith(".outcome") and e.node in started:
            begin = started.pop(e.node)
            spans.setdefault(rack_of[e.node], []).append((begin, t))
            kind = "ac_cycle" if e.payload["key"] == "ac_cycle" else e.stage
            if kind in lags:
                lags[kind].append(t - begin - bound["reboot_s"][kind])
    gaps = []
    for rack_spans in spans.values():
        ends = sorted(end for _, end in rack_spans)
        for begin, _ in sorted(rack_spans)[2:]:
            before = [end for end in ends if end <= begin]
            if before:
                gaps.append(begin - before[-1])
    firsts = [min(b for b, _ in rack_spans) for rack_spans in spans.values()]
    figures = {
        "first_reboot_late_s": round(statistics.median(firsts) - bound["first_reboot_s"], 1) if firsts else 0.0,
        **{f"{k}_seen_late_s": round(statistics.median(v), 1) if v else 0.0 for k, v in lags.items()},
        "slot_handoff_s": round(statistics.median(gaps), 1) if gaps else 0.0,
    }
    if spans:
        last = max(spans, key=lambda r: max(e for _, e in spans[r]))
        first, end = min(b for b, _ in spans[last]), max(e for _, e in spans[last])
        busy = sum(e - b for b, e in spans[last]) / bound["slots"][last]
        figures["last_rack"] = {"rack": last, "first_reboot_s": round(first, 1), "busy_per_slot_s": round(busy, 1),
                                "idle_per_slot_s": round(end - first - busy, 1), "last_end_s": round(end, 1)}
    return figures


def stage_timing(events, scale: float) -> dict[str, dict[str, float]]:  # noqa: ANN001
    """Per stage, in simulated seconds after the first event: the first node's start, the last node's
    end, and the median and slowest node's time in it (a node waiting for a reboot slot counts)."""
    t0 = events[0].ts
    began: dict[tuple[str, str], float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        if e.node is None or e.stage not in STAGES or not e.kind.startswith("stage."):
            continue
        if e.kind == "stage.running":
            began[(e.node, e.stage)] = e.ts
        elif e.kind in ("stage.done", "stage.skipped") and (e.node, e.stage) in began:
            spans.setdefault(e.stage, []).append((began.pop((e.node, e.stage)), e.ts))
    timing = {}
    for stage in STAGES:
        found = spans.get(stage, [])
        if not found:
            continue
        lengths = [end - start for start, end in found]
        timing[stage] = {"nodes": len(found), "first_start_s": round((min(s for s, _ in found) - t0) * scale, 1),
                         "last_end_s": round((max(e for _, e in found) - t0) * scale, 1),
                         "median_node_s": round(statistics.median(lengths) * scale, 1),
                         "slowest_node_s": round(max(lengths) * scale, 1)}
    return timing


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a running process from /proc (with `children`: of its ended, reaped children too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = fields[11:15] if children else fields[11:13]
    return sum(int(x) for x in used) / TICKS


@contextlib.contextmanager
def labs(work: Path, nodes: int, time_scale: float) -> Iterator[tuple[Path, list[int]]]:
    """The lab, one process per hall past 9,999 nodes (clusterctl.sim.halls), stopped on the way out:
    its inventory and the lab processes' pids."""
    from clusterctl.sim import halls, labdir, process
    from clusterctl.sim.fleet import FLAT_NAMES, HALL_NODES
    from clusterctl.sim.inventory import render_lab_inventory
    from tests.support.ports import free_port

    root = work / "lab"
    port = free_port("127.1.0.1", 20000, 45000)
    try:
        if nodes <= FLAT_NAMES:  # gpu0001.. in one process, the names the earlier figures were taken with
            summary, _ = process.up(labdir.ensure_lab_dir(root), nodes=nodes, faults=None, time_scale=time_scale,
                                    latency_ms=0, port=port, ssh_port=0)
            inventory = work / "bench-inventory.yaml"
            inventory.write_text(render_lab_inventory(nodes, root, bmc_port=port))
            yield inventory, [int(summary["pid"])]
        else:
            inventory, summaries = halls.up(root, nodes, per_hall=HALL_NODES, time_scale=time_scale, latency_ms=0,
                                            port=port, ssh_port=0)
            yield inventory, [int(s["pid"]) for s in summaries]
    finally:
        process.stop(root)
        halls.down(root)


@contextlib.contextmanager
def state_store(kind: str, work: Path) -> Iterator[tuple[str, int | None]]:
    """The store's URL and, for PostgreSQL, its postmaster's pid (for its CPU). PostgreSQL is a private
    server started and stopped as the store tests do it (tests/support/pgserver.py)."""
    if kind == "sqlite":
        yield f"sqlite:///{work / 'state.db'}", None
        return
    import pytest

    sys.path.insert(0, str(REPO / "tests"))
    from support import pgserver  # type: ignore[import-not-found]

    try:
        server = pgserver.start_private()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # how it says there is no PostgreSQL
        raise SystemExit(f"--store postgresql: {exc}") from None
    try:
        url, _name = server.create_database()
        yield url, int((server.datadir / "postmaster.pid").read_text().split()[0])
    finally:
        server.stop()


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


async def provision(inventory, options, state: str, progress_s: float):  # noqa: ANN001, ANN201
    from clusterctl.provision.engine import Engine, Tracker
    from clusterctl.state.store import Store

    nodes = inventory.select(None)
    tracker = Tracker(options.stages, len(nodes))
    store = Store.open(state)
    watcher = asyncio.ensure_future(watch(tracker, progress_s))
    try:
        engine = Engine(inventory, store, options, tracker=tracker, transport_for=counting_transport)
        return await engine.run(nodes)
    finally:
        watcher.cancel()
        store.close()


def one_controller(inventory, state: str, args: argparse.Namespace) -> dict[str, Any]:  # noqa: ANN001
    """The engine in this process: its CPU and peak RSS are this process's."""
    from clusterctl.eventloop import run
    from clusterctl.provision.context import Tuning
    from clusterctl.provision.engine import Options

    tuning = Tuning(poll_s=args.poll_interval, job_deadline_s=3600, reboot_deadline_s=3600,
                    request_timeout_s=60, stage_retry_wait_s=args.poll_interval)
    options = Options(stages=STAGES, concurrency=args.nodes, global_requests=512, tuning=tuning)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    summary = run(provision(inventory, options, state, args.progress))
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    for node, (stage, reason) in list(summary.failed.items())[:5]:
        print(f"failed {node} at {stage}: {reason}", file=sys.stderr)
    return {"controller": f"in-process {os.getpid()}", "code": 0 if not (summary.failed or summary.pending) else 1,
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cores": round(cpu / wall, 3),
            "rss_mb": round(cpu1.ru_maxrss / 1024), "ready": len(summary.ready), "failed": len(summary.failed),
            "pending": len(summary.pending), "commits": summary.commits}


def controller_processes(inventory_file: Path, state: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """`clusterctl provision` N times at once on the same nodes and store; each one reaped with os.wait4 for
    its CPU and peak RSS. Any still running when this returns (an error, Ctrl-C, SIGTERM) is killed."""
    from clusterctl.state import node_leases
    from clusterctl.state.store import Store

    share = math.ceil(args.nodes / args.controllers)  # with the whole fleet each, the first to claim takes it all
    argv = [sys.executable, "-m", "clusterctl", "-q", "-o", "json", "--state", state, "provision",
            str(inventory_file), "--yes", "--stages", ",".join(STAGES), "--concurrency", str(share),
            "--poll-interval", str(args.poll_interval), "--job-timeout", "3600", "--reboot-timeout", "3600",
            "--request-timeout", "60"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    work = inventory_file.parent
    procs: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
    rows: dict[int, dict[str, Any]] = {}
    store = Store.open(state)
    try:
        for i in range(args.controllers):
            with open(work / f"controller{i}.out", "wb") as out, open(work / f"controller{i}.err", "wb") as err:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                        start_new_session=True)
            procs[proc.pid] = (proc, time.monotonic())
        began = last = time.monotonic()
        while len(rows) < len(procs):
            time.sleep(0.2)
            for pid, (proc, started) in procs.items():
                if pid in rows:
                    continue
                reaped, status, usage = os.wait4(pid, os.WNOHANG)
                if reaped == 0:
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
                wall = time.monotonic() - started
                cpu = usage.ru_utime + usage.ru_stime
                rows[pid] = {"controller": f"pid {pid}", "code": proc.returncode, "wall_s": round(wall, 1),
                             "cpu_s": round(cpu, 1), "cores": round(cpu / wall, 3),
                             "rss_mb": round(usage.ru_maxrss / 1024)}
            if args.progress > 0 and time.monotonic() - last >= args.progress:
                last = time.monotonic()
                held = {c["controller"].rsplit(":", 1)[1]: len(c["nodes"]) for c in node_leases.controllers(store)}
                ready = store.stage_summary().get("ready", {}).get("done", 0)
                print(f"[{last - began:6.0f} s] ready {ready}/{args.nodes}, nodes held by pid: {held}, "
                      f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    finally:
        store.close()
        for pid, (proc, _) in procs.items():
            if pid not in rows and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                proc.wait(30)
    for i, pid in enumerate(procs):
        out = (work / f"controller{i}.out").read_text(errors="replace").strip()
        try:
            done = json.loads(out[out.index("{"):])
        except ValueError:
            err = (work / f"controller{i}.err").read_text(errors="replace").strip().splitlines()
            rows[pid]["error"] = (err or ["no output"])[-1][:300]
            continue
        rows[pid] |= {"ready": done["ready"], "failed": len(done["failed"]), "pending": len(done["pending"]),
                      "elsewhere": done["elsewhere"]}
        for failed in done["failed"][:5]:
            print(f"failed {failed['node']} at {failed['stage']}: {failed['reason']}", file=sys.stderr)
    return list(rows.values())


def main() -> int:
    args = parse()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the controllers, labs and PostgreSQL stop on the way out
    with tempfile.TemporaryDirectory(prefix="clusterctl-bench-") as tmp:
        work = Path(tmp)
        os.environ["HOME"] = str(work)
        os.environ["CLUSTERCTL_LAB_DIR"] = str(work / "lab")
        return measure(work, args)


def measure(work: Path, args: argparse.Namespace) -> int:
    from clusterctl.inventory import load_inventory
    from clusterctl.state.store import Store

    load = os.getloadavg()
    with state_store(args.store, work) as (state, postmaster), labs(work, args.nodes, args.time_scale) as (
            inventory_file, lab_pids):
        os.environ["CLUSTERCTL_STATE"] = state
        inventory = load_inventory(inventory_file)
        lab_cpu0 = sum(cpu_seconds(p) for p in lab_pids)
        pg_cpu0 = cpu_seconds(postmaster, children=True) if postmaster else 0.0
        if args.controllers == 1:
            controllers = [one_controller(inventory, state, args)]
        else:
            controllers = controller_processes(inventory_file, state, args)
        lab_cpu = sum(cpu_seconds(p) for p in lab_pids) - lab_cpu0
        pg_cpu = cpu_seconds(postmaster, children=True) - pg_cpu0 if postmaster else None
        store = Store.open(state)
        try:
            events = store.events(0)
            runs = [r for r in store.runs(limit=args.controllers + 5) if r.kind == "provision"]
            ready = store.stage_summary().get("ready", {}).get("done", 0)
        finally:
            store.close()
    bound = critical_path(inventory, args.time_scale)
    span = max(r.finished_at or r.started_at for r in runs) - min(r.started_at for r in runs)
    makespan = span * args.time_scale
    cpu = sum(c["cpu_s"] for c in controllers)
    figures: dict[str, Any] = {
        "nodes": args.nodes,
        "controllers": args.controllers,
        "store": args.store,
        "lab_processes": len(lab_pids),
        "ready": ready,
        "failed": sum(c.get("failed", 0) for c in controllers),
        "time_scale": args.time_scale,
        "poll_interval_s": args.poll_interval,
        "wall_s": round(span, 1),
        "makespan_sim_s": round(makespan, 1),
        "critical_path_sim_s": round(bound["critical_path_s"], 1),
        "overhead_pct": round(100 * (makespan / bound["critical_path_s"] - 1), 2),
        "orchestrator_cpu_s": round(cpu, 1),
        "orchestrator_cores": max(c["cores"] for c in controllers),
        "per_controller": controllers,
        "lab_cpu_s": round(lab_cpu, 1),
        "postgresql_cpu_s": round(pg_cpu, 1) if pg_cpu is not None else None,
        "stages_sim_s": stage_timing(events, args.time_scale),
        "medians_sim_s": where_it_went(events, inventory, args.time_scale, bound),
    }
    if args.controllers == 1:
        figures |= {
            "bmc_requests": REQUESTS[0],
            "bmc_requests_per_node": round(REQUESTS[0] / max(1, args.nodes), 1),
            "requests_per_node_by_kind": {k: round(v / max(1, args.nodes), 1)
                                          for k, v in sorted(KINDS.items(), key=lambda kv: -kv[1])[:24]},
            "store_commits": controllers[0]["commits"],
            "peak_in_flight": PEAK_IN_FLIGHT[0],
        }
    figures |= {
        "rebooting_limit": sum(r.max_rebooting for r in inventory.racks.values()),
        "load_avg_before": [round(x, 2) for x in load],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "poll_granularity_sim_s": args.poll_interval * args.time_scale,
    }
    last = figures["medians_sim_s"].get("last_rack")
    if last:  # the makespan over the bound, on the rack that ended last
        nodes_in = len(inventory.racks[last["rack"]].nodes)
        figures["gap_sim_s"] = {
            "first_reboot_late": round(last["first_reboot_s"] - bound["first_reboot_s"], 1),
            "reboots_longer": round(last["busy_per_slot_s"]
                                    - nodes_in * bound["per_node_reboot_work_s"] / bound["slots"][last["rack"]], 1),
            "slots_idle": last["idle_per_slot_s"],
            "after_last_reboot": round(makespan - last["last_end_s"], 1),
        }
    met = figures["overhead_pct"] <= 5, figures["orchestrator_cores"] < 1
    if args.json:
        print(json.dumps(figures | {"goal_met": all(met)}, indent=2))
    else:
        for key, value in figures.items():
            if key in ("per_controller", "stages_sim_s"):
                print(f"{key:>24}:")
                for item in value.items() if isinstance(value, dict) else enumerate(value, 1):
                    print(f"{'':>26}{item[0]}: {item[1]}")
            else:
                print(f"{key:>24}: {value}")
        print(f"{'goal':>24}: overhead <= 5% ({'met' if met[0] else 'NOT met'}), CPU < 1 core "
              f"{'per controller ' if args.controllers > 1 else ''}({'met' if met[1] else 'NOT met'})")
    ok = all(c["code"] == 0 for c in controllers) and ready == args.nodes
    return 0 if ok and math.isfinite(figures["overhead_pct"]) else 1


if __name__ == "__main__":
    sys.exit(main())
