"""Goal (issues 4 and 18): sweep 2,000 slow BMCs at >= 15x the throughput of the DMTF `redfish` library
in 50 threads, and within 3x of the latency bound.

Every BMC is asked for the same things by both clients, with session auth and TLS verified
against the lab CA: service root, session login, chassis Power, chassis Thermal, the firmware
inventory (every member in full), logout. The simulator runs in its own process with an added
latency per answer (500 ms by default; real iDRACs take from hundreds of ms to seconds), and each
client runs in its own subprocess so that its CPU time is its own. The baseline may sweep a subset
of the BMCs (`--baseline-nodes`): it is latency bound, so the comparison is of rates.

Like with like: both read the firmware inventory with `$expand=.($levels=1)` (one request, as
real iDRAC9s allow; the DMTF library passes it as `args`), or both member by member with
`--no-expand`. Ours is `run_fleet` with one request in flight per BMC (a polite limit for iDRACs)
and all BMCs at once, spread over as many processes as `auto_processes` gives (`--processes`);
the latency bound is requests x latency / (per-BMC limit x BMCs). Requests are counted by the
simulator's BMCs, retries included, the same way for both clients; client CPU includes that of
run_fleet's worker processes, and the simulator's share of a core is shown, since on a small
machine it competes with the clients for the same cores. The
simulator uses uvicorn's httptools parser, so that its CPU stays small next to the clients'.

    .venv/bin/python benchmarks/bmc_sweep.py                 # 2,000 BMCs, 500 ms, baseline on 200
    .venv/bin/python benchmarks/bmc_sweep.py --quick         # 100 BMCs, 100 ms: a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
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

THROUGHPUT_GOAL = 15.0  # x the baseline's requests per second
BOUND_GOAL = 3.0  # wall time within this many times the latency bound
BASELINE_THREADS = 50
BASE_ADDRESS = "127.93.0.0"  # away from the lab's default 127.1.0.0, which tests may be using
START_TIMEOUT_S = 180.0
SWEEP_TIMEOUT_S = 1800.0
USER = "root"

V1 = "/redfish/v1"
POWER = f"{V1}/Chassis/System.Embedded.1/Power"
THERMAL = f"{V1}/Chassis/System.Embedded.1/Thermal"
FIRMWARE = f"{V1}/UpdateService/FirmwareInventory"
EXPAND = ".($levels=1)"  # members in full, one level; DSP0266 7.3.1


# --- what both clients must bring back ---------------------------------------------------------------
def check_sweep(power: dict[str, Any], thermal: dict[str, Any], firmware: list[dict[str, Any]]) -> str | None:
    """Why a BMC's answers are not a full sweep, or None: a fast client must not be fast by skipping work."""
    if not power.get("PowerControl"):
        return "Power without PowerControl"
    if not (thermal.get("Temperatures") and thermal.get("Fans")):
        return "Thermal without Temperatures or Fans"
    if not firmware or not all(m.get("Version") for m in firmware):
        return "firmware inventory empty or members without Version"
    return None


# --- our client (one subprocess, and the worker processes run_fleet spreads the BMCs over) ---------
async def sweep_bmc(firmware_uri: str, bmc: Any) -> str | None:
    """Our sweep of one BMC; module-level, so that it crosses to run_fleet's worker processes."""
    power = await bmc.get(POWER)
    thermal = await bmc.get(THERMAL)
    firmware = await bmc.members(firmware_uri)
    return check_sweep(power, thermal, firmware)


def _ours(spec: dict[str, Any]) -> dict[str, Any]:
    import functools

    import bmc_sweep  # this script as a module: run_fleet's workers import `sweep_bmc` from it, not __main__

    from clusterctl import eventloop
    from clusterctl.redfish import BMCTarget, Limits, run_fleet

    targets = [
        BMCTarget(name=f"bmc{i}", base_url=url, username=USER, password=spec["password"], verify=spec["ca"])
        for i, url in enumerate(spec["urls"])
    ]
    firmware_uri = f"{FIRMWARE}?$expand={EXPAND}" if spec["expand"] else FIRMWARE

    async def run() -> list[Any]:
        limits = Limits(per_bmc=spec["per_bmc"], global_requests=spec["global_requests"])
        return await run_fleet(targets, functools.partial(bmc_sweep.sweep_bmc, firmware_uri), limits=limits,
                               max_bmcs=len(targets), per_bmc_timeout=600.0, processes=spec["processes"])

    _wait_for_go()
    wall, cpu = time.perf_counter(), _cpu_with_children()
    results = eventloop.run(run())  # as the product's commands run it: on uvloop where installed
    wall, cpu = time.perf_counter() - wall, _cpu_with_children() - cpu
    errors = [r.error or r.value for r in results if not r.ok or r.value]
    return {"wall_s": wall, "cpu_s": cpu, "bmcs": len(targets), "errors": errors, "processes": spec["processes"]}


def _cpu_with_children() -> float:
    """This process's CPU seconds and those of its children that have ended (run_fleet's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


# --- the baseline: DMTF `redfish` in a thread pool (another subprocess) -----------------------------
def _baseline(spec: dict[str, Any]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import redfish

    def body(client: Any, path: str, args: dict[str, str] | None = None) -> dict[str, Any]:
        resp = client.get(path, args=args)
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {resp.status}")
        return resp.dict

    def firmware(client: Any) -> list[dict[str, Any]]:
        args = {"$expand": EXPAND} if spec["expand"] else None
        page: dict[str, Any] = body(client, FIRMWARE, args)
        listed = list(page.get("Members", []))
        for _ in range(100):
            if not page.get("Members@odata.nextLink"):
                break
            page = body(client, page["Members@odata.nextLink"])
            listed += page.get("Members", [])
        if spec["expand"]:
            return listed
        return [body(client, m["@odata.id"]) for m in listed]

    def one(url: str) -> str | None:
        try:
            client = redfish.redfish_client(
                base_url=url, username=USER, password=spec["password"], cafile=spec["ca"], timeout=30, max_retry=3
            )
            client.login(auth="session")
            try:
                return check_sweep(body(client, POWER), body(client, THERMAL), firmware(client))
            finally:
                client.logout()
        except Exception as exc:  # noqa: BLE001 - counted and shown as this BMC's failure
            return f"{type(exc).__name__}: {exc}"

    _wait_for_go()
    wall, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(BASELINE_THREADS) as pool:
        outcomes = list(pool.map(one, spec["urls"]))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    errors = [o for o in outcomes if o]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "bmcs": len(spec["urls"]),
        "errors": errors,
        "version": redfish.__version__ if hasattr(redfish, "__version__") else _dist_version("redfish"),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _wait_for_go() -> None:
    """Imports and set-up are done; the parent starts the clocks (ours and the simulator's) together."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("ready", flush=True)
    sys.stdin.readline()


def worker(kind: str) -> int:
    spec = json.loads(sys.stdin.readline())
    result = _ours(spec) if kind == "ours" else _baseline(spec)
    result["errors_total"] = len(result["errors"])
    result["errors"] = result["errors"][:3]
    print(json.dumps(result), flush=True)
    return 0


# --- the parent: lab, workers, figures ----------------------------------------------------------------
@contextlib.contextmanager
def lab(nodes: int, latency_ms: float, lab_dir: Path, http: str) -> Iterator[dict[str, Any]]:
    """The simulator in its own process on private addresses; stopped (TERM, then KILL) on the way out."""
    from clusterctl.sim.certs import ensure_ca
    from clusterctl.sim.fleet import bmc_address
    from clusterctl.sim.labdir import read_info
    from tests.support.ports import ephemeral_port
    from tests.support.process import terminate

    ensure_ca(lab_dir)
    port = ephemeral_port(bmc_address(0, BASE_ADDRESS))
    cmd = [
        sys.executable, "-m", "clusterctl.sim", "--lab-dir", str(lab_dir), "--nodes", str(nodes),
        "--latency-ms", str(latency_ms), "--port", str(port), "--base-address", BASE_ADDRESS, "--http", http,
    ]  # fmt: skip
    with open(lab_dir / "sim.log", "ab") as log_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=REPO)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        info = read_info(lab_dir)
        while not (info and info.get("pid") == proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (lab_dir / "sim.log").read_text(errors="replace").strip().splitlines()[-2:]
                raise SystemExit("the simulator did not start: " + (" | ".join(tail) or "no output"))
            time.sleep(0.2)
            info = read_info(lab_dir)
        info["urls"] = [f"https://{bmc_address(i, BASE_ADDRESS)}:{port}" for i in range(nodes)]
        info["password"] = (lab_dir / "bmc-password").read_text().strip()
        yield info
    finally:
        terminate(proc)


def lab_status(lab_dir: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-BMC counters from the lab's control API: proof of session auth and of every logout."""
    import ssl

    import httpx

    token = (lab_dir / "control-token").read_text().strip()
    context = ssl.create_default_context(cafile=str(lab_dir / "ca.pem"))
    with httpx.Client(base_url=info["control"], verify=context, timeout=60.0) as client:
        response = client.get("/status", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return list(response.json()["servers"])


def _answered(lab_dir: Path, info: dict[str, Any]) -> int:
    return sum(s["requests"] for s in lab_status(lab_dir, info))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_worker(kind: str, spec: dict[str, Any], lab_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """One client sweep in a subprocess; the simulator's CPU and the requests its BMCs answered (retries
    included, counted alike for both clients) are read around the sweep alone."""
    sim_pid = info["pid"]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdin is not None and proc.stdout is not None  # noqa: S101 - pipes asked for above
    try:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        if _line_within(proc, START_TIMEOUT_S).strip() != "ready":
            raise SystemExit(f"the {kind} worker failed to start")
        answered = _answered(lab_dir, info)
        sim_cpu, started = _cpu_seconds(sim_pid), time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = _line_within(proc, SWEEP_TIMEOUT_S)
        wall = time.perf_counter() - started
        sim_cpu = _cpu_seconds(sim_pid) - sim_cpu
        if not line:
            raise SystemExit(f"the {kind} worker died (exit {proc.wait(timeout=30)})")
        result: dict[str, Any] = json.loads(line)
        result["sim_cpu_share"] = sim_cpu / wall
        result["requests"] = _answered(lab_dir, info) - answered
        proc.wait(timeout=30)
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _line_within(proc: subprocess.Popen[str], seconds: float) -> str:
    """The worker's next line, or "" when it said nothing for `seconds` (a hung sweep ends the run)."""
    assert proc.stdout is not None  # noqa: S101 - piped by the caller
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    return proc.stdout.readline() if ready else ""


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the lab, run both sweeps one after the other, stop the lab; the figures in one dict."""
    baseline_nodes = min(args.baseline_nodes, args.nodes)
    with (
        tempfile.TemporaryDirectory(prefix="bmc-sweep-") as tmp,
        lab(args.nodes, args.latency_ms, Path(tmp), args.sim_http) as info,
    ):
        common = {"password": info["password"], "ca": str(Path(tmp) / "ca.pem"), "expand": args.expand}
        load_before = os.getloadavg()
        ours = run_worker(
            "ours",
            common | {"urls": info["urls"], "per_bmc": args.per_bmc, "global_requests": args.global_requests,
                      "processes": args.processes},
            Path(tmp),
            info,
        )
        base = run_worker("baseline", common | {"urls": info["urls"][:baseline_nodes]}, Path(tmp), info)
        load_after = os.getloadavg()
        servers = lab_status(Path(tmp), info)
    latency_s = args.latency_ms / 1000.0
    for r in (ours, base):
        r["rps"] = r["requests"] / r["wall_s"]
        r["bmcs_per_s"] = r["bmcs"] / r["wall_s"]
        r["cpu_ms_per_req"] = 1000.0 * r["cpu_s"] / max(r["requests"], 1)
        r["cpu_busy"] = r["cpu_s"] / r["wall_s"]
    # The latency bound: every request costs the latency, and the BMCs take per_bmc requests at a time.
    ours["bound_s"] = ours["requests"] * latency_s / (args.per_bmc * args.nodes)
    base["bound_s"] = base["requests"] * latency_s / (args.per_bmc * baseline_nodes)
    return {
        "nodes": args.nodes,
        "baseline_nodes": baseline_nodes,
        "latency_ms": args.latency_ms,
        "per_bmc": args.per_bmc,
        "processes": args.processes,
        "global_requests": args.global_requests,
        "expand": args.expand,
        "sim_http": args.sim_http,
        "cpus": os.cpu_count(),
        "sim_pid": info["pid"],
        "sim_sessions_created": sum(s["sessions_created"] for s in servers),
        "sim_sessions_open": sum(s["sessions"] for s in servers),
        "load_before": load_before,
        "load_after": load_after,
        "ours": ours,
        "baseline": base,
        "throughput_ratio": ours["rps"] / max(base["rps"], 1e-9),
        "bmc_rate_ratio": ours["bmcs_per_s"] / max(base["bmcs_per_s"], 1e-9),
        "bound_ratio": ours["wall_s"] / max(ours["bound_s"], 1e-9),  # no request answered: every BMC failed
        "goals_met": ours["rps"] >= THROUGHPUT_GOAL * base["rps"] and ours["wall_s"] <= BOUND_GOAL * ours["bound_s"]
        and ours["errors_total"] == 0,
    }


def render(fig: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ours, base = fig["ours"], fig["baseline"]
    table = Table(
        title=f"BMC sweep: {fig['nodes']} simulated BMCs, {fig['latency_ms']:.0f} ms per answer",
        caption=(
            f"baseline on {fig['baseline_nodes']} BMCs, compared as rates; "
            f"firmware members {'by $expand' if fig['expand'] else 'one GET each'} in both; "
            f"per-BMC limit {fig['per_bmc']}, global {fig['global_requests']}; our processes {fig['processes']}; "
            f"simulator parser {fig['sim_http']}"
        ),
    )
    table.add_column("")
    table.add_column("clusterctl (run_fleet)", justify="right")
    table.add_column(f"DMTF redfish {base.get('version', '?')}, {BASELINE_THREADS} threads", justify="right")
    table.add_column("ratio", justify="right")
    rows = [
        (
            "BMCs swept (failed)",
            f"{ours['bmcs']} ({ours['errors_total']})",
            f"{base['bmcs']} ({base['errors_total']})",
            "",
        ),
        ("requests", f"{ours['requests']:,}", f"{base['requests']:,}", ""),
        ("wall time, s", f"{ours['wall_s']:.2f}", f"{base['wall_s']:.2f}", ""),
        (
            "requests per second",
            f"{ours['rps']:,.0f}",
            f"{base['rps']:,.0f}",
            f"{fig['throughput_ratio']:.1f}x (goal >= {THROUGHPUT_GOAL:.0f}x)",
        ),
        (
            "BMCs per second",
            f"{ours['bmcs_per_s']:,.1f}",
            f"{base['bmcs_per_s']:,.1f}",
            f"{fig['bmc_rate_ratio']:.1f}x",
        ),
        (
            "client CPU ms per request (workers included)",
            f"{ours['cpu_ms_per_req']:.2f}",
            f"{base['cpu_ms_per_req']:.2f}",
            f"{ours['cpu_ms_per_req'] / max(base['cpu_ms_per_req'], 1e-9):.2f}x",
        ),
        ("client CPU busy (of one core; all its processes)", f"{ours['cpu_busy']:.0%}", f"{base['cpu_busy']:.0%}", ""),
        ("simulator CPU share (of one core)", f"{ours['sim_cpu_share']:.0%}", f"{base['sim_cpu_share']:.0%}", ""),
        (
            f"latency bound, s (requests x latency / ({fig['per_bmc']} x BMCs))",
            f"{ours['bound_s']:.2f}",
            f"{base['bound_s']:.2f}",
            f"wall / bound {fig['bound_ratio']:.2f}x (goal <= {BOUND_GOAL:.0f}x)",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console = Console(width=max(Console().width, 120))
    console.print(table)
    for name, r in (("clusterctl", ours), ("baseline", base)):
        for error in r["errors"]:
            console.print(f"[red]{name} failure[/red]: {error}")
    load = " ".join(f"{x:.2f}" for x in fig["load_after"])
    console.print(f"{fig['cpus']} CPUs; load average before {fig['load_before'][0]:.2f}, after {load}")
    console.print("goals met" if fig["goals_met"] else "[yellow]goals missed[/yellow]")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=None, help="simulated BMCs (default 2000; 100 with --quick)")
    p.add_argument("--latency-ms", type=float, default=None, help="added latency per answer (500; 100 with --quick)")
    p.add_argument("--baseline-nodes", type=int, default=None, help="BMCs the baseline sweeps (200; 50 with --quick)")
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--per-bmc", type=int, default=1, help="our requests in flight per BMC (default 1)")
    p.add_argument("--processes", type=int, default=None, help="our processes (default: auto_processes(nodes))")
    p.add_argument("--global-requests", type=int, default=None, help="our requests in flight in all (default: nodes)")
    p.add_argument(
        "--no-expand",
        dest="expand",
        action="store_false",
        help="fetch firmware members one GET each instead of $expand (both clients)",
    )
    p.add_argument("--sim-http", choices=["h11", "httptools"], default="httptools", help="the simulator's parser")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    args.nodes = args.nodes or (100 if quick else 2000)
    args.latency_ms = args.latency_ms if args.latency_ms is not None else (100.0 if quick else 500.0)
    args.baseline_nodes = args.baseline_nodes or (50 if quick else 200)
    args.global_requests = args.global_requests or args.nodes * args.per_bmc
    if args.processes is None:
        from clusterctl.redfish.processes import auto_processes

        args.processes = auto_processes(args.nodes)
    if args.nodes < 1 or args.baseline_nodes < 1 or args.per_bmc < 1 or args.latency_ms < 0 or args.processes < 1:
        p.error("--nodes, --baseline-nodes, --per-bmc and --processes must be positive, --latency-ms not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker)
    figures = measure(args)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        render(figures)
    return 0 if figures["goals_met"] or args.quick else 1  # a smoke run checks that it runs, not the goals


if __name__ == "__main__":
    sys.exit(main())
