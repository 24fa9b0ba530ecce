"""The whole flow on a site-sized lab (issue 18): per stage, wall time, controller CPU and peak RSS.

The lab is one process per hall (clusterctl.sim.halls: two sockets a node do not fit one process at
12,500 nodes), named per hall (`h1-gpu0001`..), with one site inventory. Each stage is the CLI as an
operator runs it, in its own process, so its CPU (user + system) and peak RSS are that process's
alone (`os.wait4`): inventory check, bmc telemetry, provision, validate, burnin --launcher ssh
(transformer-tiny, over the lab's SSH), one monitor sweep (the telemetry /metrics exposes), and the
dashboard (a process that serves the app on loopback and answers /api/v1/fleet, the fleet page's
one query, and /metrics). The labs' CPU in each stage is shown beside it: on a 2-core machine the
simulator competes with the controller.

    .venv/bin/python benchmarks/site_scale.py --nodes 2000
    .venv/bin/python benchmarks/site_scale.py --nodes 12500 --time-scale 120
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

TICKS = os.sysconf("SC_CLK_TCK")
FLEET_GOAL_S, METRICS_GOAL_S = 1.0, 2.0
PROVISION_GOAL_PCT = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (the labs), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_stage(name: str, argv: list[str], labs: list[int], env: dict[str, str], timeout: float,
              scratch: Path) -> dict[str, Any]:
    """Run one stage's process; its own CPU and peak RSS come from `os.wait4`, the labs' CPU from /proc."""
    lab_cpu = sum(cpu_seconds(p) for p in labs)
    out_path, err_path = scratch / f"{name}.out", scratch / f"{name}.err"
    began = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, start_new_session=True)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return {"stage": name, "code": proc.returncode, "wall_s": round(time.monotonic() - began, 1),
            "timed_out": proc.returncode == -signal.SIGKILL, "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "rss_mb": round(usage.ru_maxrss / 1024), "lab_cpu_s": round(sum(cpu_seconds(p) for p in labs) - lab_cpu, 1),
            "stdout": out_path.read_text(errors="replace"), "stderr": err_path.read_text(errors="replace")}


def provision_overhead(inventory_file: Path, row: dict[str, Any], time_scale: float) -> dict[str, Any]:
    """Issue 18's provision goal (overhead over the critical path <= 5%), read from the stage's wall time
    (process start and inventory load included) against provision_scale.py's critical path."""
    from clusterctl.inventory import load_inventory

    sys.path.insert(0, str(REPO / "benchmarks"))
    from provision_scale import critical_path  # type: ignore[import-not-found]

    bound = critical_path(load_inventory(inventory_file), time_scale)["critical_path_s"]
    return {"critical_path_sim_s": round(bound, 1),
            "overhead_pct": round(100 * (row["wall_s"] * time_scale / bound - 1), 1),
            "cpu_bound": row["cpu_s"] > bound / time_scale}


def dashboard_child(state: str, inventory: str, loads: int) -> int:
    """The dashboard stage's process: serve the app, time the fleet query and a /metrics scrape."""
    import httpx

    from clusterctl.dashboard.app import create_app
    from clusterctl.dashboard.auth import Token
    from clusterctl.inventory import load_inventory
    from clusterctl.state.store import Store

    sys.path.insert(0, str(REPO / "benchmarks"))
    from dashboard_render import serve  # type: ignore[import-not-found]

    token = "site-scale-benchmark-token-0123456789"
    store = Store.open(state)
    base, server, thread = serve(create_app(store, load_inventory(Path(inventory)), Token(token, "benchmark")))
    fleet, metrics, series = [], [], 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        for _ in range(loads):
            t0 = time.perf_counter()
            assert http.get("/api/v1/fleet").status_code == 200
            fleet.append(time.perf_counter() - t0)
            store.event("benchmark.tick")  # a changed store, as after a sweep: rendered, not the reused text
            t0 = time.perf_counter()
            scraped = http.get("/metrics")
            metrics.append(time.perf_counter() - t0)
            series = sum(1 for line in scraped.text.splitlines() if line and not line.startswith("#"))
    server.should_exit = True
    thread.join(timeout=15)
    store.close()
    print(json.dumps({"fleet_s": sorted(fleet)[len(fleet) // 2], "metrics_s": sorted(metrics)[len(metrics) // 2],
                      "series": series}))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--per-hall", type=int, default=None, help="nodes per lab process (default: the lab's halls)")
    p.add_argument("--time-scale", type=float, default=60.0)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--stages", default="check,telemetry,provision,validate,burnin,monitor,dashboard")
    p.add_argument("--provision-stages", default="discover,firmware,bios",
                   help="the BMC stages by default; the os stage runs ansible-runner over every node (see README)")
    p.add_argument("--stage-timeout", type=float, default=1800.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep-state", type=Path, help="copy the run's state store (SQLite) here, to study it afterwards")
    p.add_argument("--dashboard-child", nargs=3, metavar=("STATE", "INVENTORY", "LOADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dashboard_child:
        return dashboard_child(args.dashboard_child[0], args.dashboard_child[1], int(args.dashboard_child[2]))

    from clusterctl.sim import halls
    from clusterctl.sim.fleet import HALL_NODES

    wanted = args.stages.split(",")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the labs are stopped on the way out
    with tempfile.TemporaryDirectory(prefix="site-scale-") as tmp:
        root = Path(tmp) / "lab"
        state = f"sqlite:///{Path(tmp) / 'state.db'}"
        began = time.monotonic()
        inventory, summaries = halls.up(root, args.nodes, per_hall=args.per_hall or HALL_NODES,
                                        time_scale=args.time_scale, latency_ms=args.latency_ms,
                                        port=free_port(), ssh_port=free_port())
        labs = [int(s["pid"]) for s in summaries]
        print(f"lab: {args.nodes} nodes in {len(labs)} process(es), up in {time.monotonic() - began:.0f} s",
              file=sys.stderr)
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cli = [sys.executable, "-m", "clusterctl", "-q", "-o", "json", "--state", state]
        stages = {
            "check": [*cli, "inventory", "check", str(inventory)],
            "telemetry": [*cli, "bmc", "telemetry", str(inventory)],
            "provision": [*cli, "provision", str(inventory), "--yes", "--poll-interval", "2",
                          "--stages", args.provision_stages,
                          "--concurrency", str(args.nodes)],
            "validate": [*cli, "validate", str(inventory)],
            "burnin": [*cli, "burnin", str(inventory), "--launcher", "ssh", "--model", "transformer-tiny",
                       "--steps", "20", "--log-every", "10", "--timeout", "10m"],
            "monitor": [*cli, "monitor", str(inventory), "--once"],  # the telemetry /metrics exposes
            "dashboard": [sys.executable, str(Path(__file__).resolve()), "--dashboard-child", state, str(inventory),
                          "3"],
        }
        rows = []
        try:
            for name in wanted:
                print(f"stage {name} ...", file=sys.stderr, flush=True)
                row = run_stage(name, stages[name], labs, env, args.stage_timeout, Path(tmp))
                if name == "dashboard" and row["code"] == 0:
                    row |= json.loads(row["stdout"].strip().splitlines()[-1])
                if row["code"] not in (0, 1) or row["timed_out"]:
                    row["error"] = (row["stderr"].strip().splitlines() or ["?"])[-1][:200]
                rows.append(row)
                print(f"  {row['wall_s']} s, code {row['code']}, CPU {row['cpu_s']} s, peak RSS {row['rss_mb']} MiB, "
                      f"labs' CPU {row['lab_cpu_s']} s", file=sys.stderr, flush=True)
            lab_rss = [round(rss_mb(p)) for p in labs]
            for row in rows:
                if row["stage"] == "provision" and row["code"] == 0:
                    row |= provision_overhead(inventory, row, args.time_scale)
            if args.keep_state:
                import sqlite3

                with sqlite3.connect(Path(tmp) / "state.db") as src, sqlite3.connect(args.keep_state) as dst:
                    src.backup(dst)
        finally:
            halls.down(root)
    for row in rows:
        row.pop("stdout"), row.pop("stderr")
    figures = {"nodes": args.nodes, "lab_processes": len(labs), "lab_peak_rss_mb": lab_rss,
               "time_scale": args.time_scale, "cores": os.cpu_count(), "stages": rows}
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"site scale: {args.nodes} lab nodes in {len(labs)} lab process(es) (peak RSS {lab_rss} MiB), "
          f"time scale {args.time_scale}, {os.cpu_count()} cores")
    print(f"{'stage':<11}{'code':>5}{'wall s':>9}{'ctl CPU s':>11}{'ctl RSS MiB':>13}{'lab CPU s':>11}  note")
    for r in rows:
        note = r.get("error", "")
        if r["stage"] == "provision" and "overhead_pct" in r:
            note = (f"overhead {r['overhead_pct']}% over the {r['critical_path_sim_s']:.0f} sim-s critical path "
                    f"(goal <= {PROVISION_GOAL_PCT}%)" + (
                        f": CPU-bound, the controller's {r['cpu_s']} CPU s exceed the critical path's "
                        f"{r['critical_path_sim_s'] / args.time_scale:.0f} real s" if r["cpu_bound"] else ""))
        if r["stage"] == "dashboard" and "fleet_s" in r:
            note = (f"/api/v1/fleet {r['fleet_s'] * 1000:.0f} ms (goal < {FLEET_GOAL_S * 1000:.0f}), /metrics "
                    f"{r['metrics_s'] * 1000:.0f} ms (goal < {METRICS_GOAL_S * 1000:.0f}), {r['series']} series")
        print(f"{r['stage']:<11}{r['code']:>5}{r['wall_s']:>9}{r['cpu_s']:>11}{r['rss_mb']:>13}"
              f"{r['lab_cpu_s']:>11}  {note}")
    return 0 if all(r["code"] in (0, 1) and not r["timed_out"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
