"""Goals (issue 17): a quick check round over 2,000 lab nodes under 60 s, and `trends` over 90 days x 2,000
nodes of history answering in under 1 s.

Part 1 runs `clusterctl check --suite quick` as a real process against a lab process, twice, the lab
clock moved 6 simulated hours between the rounds (so the second is judged against a history).
Part 2 fills a fresh SQLite store with synthetic rounds inserted directly (90 days x 2,000 nodes,
--per-day rounds a day, the catalog's main metrics, a regression and a risk score on 1 % of the
node-rounds) and times the two `trends` queries: one node's every metric, and the fleet's regressions
with the early-warning list.

    .venv/bin/python benchmarks/check_scale.py                # both parts, 2,000 nodes
    .venv/bin/python benchmarks/check_scale.py --quick        # 200 nodes, 30 days
    .venv/bin/python benchmarks/check_scale.py --skip-round   # part 2 only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

ROUND_GOAL_S = 60.0
TRENDS_GOAL_S = 1.0
START_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 1800.0
DAY = 86_400.0
MODEL = "H100-SXM5-80GB"
METRICS = {"gpu.sm_clock_mhz": 1980.0, "gpu.temperature_c": 34.0, "gpu.power_w": 560.0, "gpu.ecc_corrected": 0.0,
           "gpu.remapped_rows": 0.0, "gpu.xid": 0.0, "ib.symbol_error": 0.0, "ib.link_downed": 0.0,
           "ib.rate_gbps": 400.0, "bmc.inlet_c": 22.0, "bmc.fan_rpm": 5280.0, "bmc.power_w": 1960.0}


GOALS: list[str] = []
"""One line per goal, printed again at the end."""


def lab_round(nodes: int, parallel: int) -> int:
    from clusterctl.sim import process as lab_process
    from clusterctl.sim.inventory import render_lab_inventory
    from tests.support.ports import free_port
    from tests.support.process import cpu_seconds, terminate

    with tempfile.TemporaryDirectory(prefix="check-scale-") as tmp:
        work = Path(tmp)
        lab_dir = work / "lab"
        lab_dir.mkdir(mode=0o700)
        bmc_port, ssh_port = free_port("127.1.0.1", 20000, 60000), free_port("127.2.0.1", 20000, 60000)
        with open(work / "sim.log", "wb") as log:
            lab = subprocess.Popen([sys.executable, "-m", "clusterctl.sim", "--lab-dir", str(lab_dir), "--nodes",
                                    str(nodes), "--port", str(bmc_port), "--ssh-port", str(ssh_port),
                                    "--time-scale", "1"],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not (lab_dir / "lab.json").exists():
                if lab.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the lab did not start: " + (work / "sim.log").read_text()[-1000:])
                time.sleep(0.2)
            info = json.loads((lab_dir / "lab.json").read_text())
            inventory = work / "inventory.yaml"
            inventory.write_text(render_lab_inventory(nodes, lab_dir, bmc_port=bmc_port, ssh_port=ssh_port))
            env = dict(os.environ, CLUSTERCTL_STATE=f"sqlite:///{work / 'state.db'}")
            for n in range(2):
                if n:
                    lab_process.control(lab_dir, info, "POST", "/clock", json={"advance_s": DAY / 4})
                lab_cpu, ours = cpu_seconds(lab.pid), _children_cpu()
                started = time.monotonic()
                done = subprocess.run([sys.executable, "-m", "clusterctl", "-q", "-o", "json", "check",
                                       str(inventory), "--parallel", str(parallel)],
                                      capture_output=True, env=env, timeout=RUN_TIMEOUT_S, check=False)
                wall = time.monotonic() - started
                lab_cpu, ours = cpu_seconds(lab.pid) - lab_cpu, _children_cpu() - ours
                try:
                    doc = json.loads(done.stdout)
                except ValueError:
                    print(f"check exited {done.returncode} without a report: {done.stderr.decode()[-1500:]}")
                    return 1
                s = doc["summary"]
                parts = ", ".join(f"{k} {v:.1f} s" for k, v in doc.get("seconds", {}).items())
                figures = sum(1 for _ in doc["nodes"])
                print(f"  round {n + 1}: wall {wall:.1f} s ({wall / nodes * 1000:.1f} ms per node), "
                      f"pass {s['pass']}, warn {s['warn']}, fail {s['fail']}, regressions {s['regressions']} "
                      f"({figures} nodes judged); goal {ROUND_GOAL_S:.0f} s for 2,000: "
                      f"{'met' if wall < ROUND_GOAL_S else 'not met'}" if nodes >= 2000 else
                      f"  round {n + 1}: wall {wall:.1f} s for {nodes} nodes, regressions {s['regressions']}")
                print(f"    of which {parts} (collect is validate's SSH and Redfish; judge and record are the "
                      "check's own)")
                GOALS.append(f"round {n + 1} over {nodes} nodes: {wall:.1f} s wall (goal {ROUND_GOAL_S:.0f} s for "
                             f"2,000: {'met' if wall < ROUND_GOAL_S and nodes >= 2000 else 'not met'}), CPU controller "
                             f"{ours:.1f} s + lab {lab_cpu:.1f} s on {os.cpu_count()} cores, load average {_load()}")
                cores = os.cpu_count() or 1
                print(f"    CPU: controller {ours:.1f} s ({ours / nodes * 1000:.1f} ms per node), lab {lab_cpu:.1f} s "
                      f"({lab_cpu / nodes * 1000:.1f} ms per node): no faster than {(ours + lab_cpu) / cores:.0f} s "
                      f"on {cores} idle cores; load average {_load()}")
        finally:
            terminate(lab, kill_timeout=5)
    return 0


def _children_cpu() -> float:
    """User and system CPU seconds of the ended children waited for: the check process."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fill(store_url: str, nodes: int, days: int, per_day: int, seed: int = 17) -> tuple[int, int]:
    """Synthetic rounds straight into the store: one run per round, its figures, its peers' bands (one GPU model),
    1 % findings and risks."""
    from clusterctl.check.figures import metric as catalog
    from clusterctl.check.judge import band_of
    from clusterctl.state import schema
    from clusterctl.state.store import Store

    rng = random.Random(seed)
    names = [f"gpu{i + 1:04d}" for i in range(nodes)]
    start = time.time() - days * DAY
    figures = findings = 0
    with Store.open(store_url) as store:
        for r in range(days * per_day):
            ts = start + r * DAY / per_day
            run_id = store.start_run("check", args={"synthetic": True})
            values = {(n, m): v + rng.random() for n in names for m, v in METRICS.items()}
            rows = [{"run_id": run_id, "node": n, "metric": m, "value": v, "ts": ts, "labels": None}
                    for (n, m), v in values.items()]
            found = [{"run_id": run_id, "node": n, "metric": "gpu.ecc_corrected", "judge": judge,
                      "value": 1.5, "since": ts - DAY, "detail": "synthetic", "remediation": "synthetic", "ts": ts}
                     for n in rng.sample(names, max(1, nodes // 100)) for judge in ("rate", "risk")]
            bands = [{"run_id": run_id, "metric": m, "model": MODEL, "median": b.median, "mad": b.mad,
                      "peers": b.peers}
                     for m in METRICS if (c := catalog(m)) is not None and c.peers
                     for b in [band_of([values[(n, m)] for n in names])]]
            with store.transaction() as tx:
                tx.connection.execute(schema.check_figures.insert(), rows)
                tx.connection.execute(schema.check_findings.insert(), found)
                tx.connection.execute(schema.check_bands.insert(), bands)
            store.finish_run(run_id, "succeeded", {"synthetic": True})
            figures += len(rows)
            findings += len(found)
    return figures, findings


def trends(nodes: int, days: int, per_day: int) -> int:
    from clusterctl.check.trends import fleet_trends, node_trends
    from clusterctl.state.store import Store

    with tempfile.TemporaryDirectory(prefix="check-trends-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'state.db'}"
        started = time.monotonic()
        figures, findings = fill(url, nodes, days, per_day)
        size = (Path(tmp) / "state.db").stat().st_size / 1e6
        print(f"  filled {figures:,} figures and {findings:,} findings ({days} days x {nodes} nodes x {per_day} "
              f"rounds a day x {len(METRICS)} metrics) in {time.monotonic() - started:.0f} s, {size:,.0f} MB")
        worst = 0.0
        node = f"gpu{nodes // 2:04d}"
        with Store.open(url) as store:
            for label, call in (
                (f"trends --node {node} --since {days}d (every metric)", lambda: node_trends(store, node, days)),
                (f"trends --node {node} --metric gpu.sm_clock_mhz", lambda: node_trends(store, node, days,
                                                                                         "gpu.sm_clock_mhz")),
                (f"trends --since {days}d (fleet regressions, early warning)",
                 lambda: fleet_trends(store, days, None, 20)),
            ):
                call()  # warm the page cache once, as a second operator query would find it
                started = time.monotonic()
                data = call()
                took = time.monotonic() - started
                worst = max(worst, took)
                points = sum(s["rounds"] for s in data.get("series", {}).values())
                print(f"  {label}: {took * 1000:.0f} ms ({points:,} points, {len(data['regressions'])} regressions)")
            GOALS.append(f"trends over {days} days x {nodes} nodes: slowest query {worst * 1000:.0f} ms (goal "
                         f"{TRENDS_GOAL_S:.0f} s: {'met' if worst < TRENDS_GOAL_S else 'not met'}), "
                         f"load average {_load()}")
            print(f"  goal {TRENDS_GOAL_S:.0f} s: {'met' if worst < TRENDS_GOAL_S else 'not met'} "
                  f"(slowest {worst * 1000:.0f} ms; load average {_load()})")
            judging(store, nodes)
            node_page(store, node)
    return 0


def judging(store: object, nodes: int) -> None:
    """What a round adds on this history: reading every node's last 7 days and judging one more round."""
    from clusterctl.check.figures import Figure
    from clusterctl.check.history import history
    from clusterctl.check.judge import Policy
    from clusterctl.check.round import JUDGED, judge_round

    names = [f"gpu{i + 1:04d}" for i in range(nodes)]
    now = time.time()
    policy = Policy()
    started = time.monotonic()
    past = history(store, names, now - policy.window_days * DAY, now, JUDGED)  # type: ignore[arg-type]
    read = time.monotonic() - started
    figures = {n: {m: Figure(n, m, v + 0.5) for m, v in METRICS.items()} for n in names}
    started = time.monotonic()
    findings, risks = judge_round(figures, now, dict.fromkeys(names, "H100-SXM5-80GB"), past, policy)
    judged = time.monotonic() - started
    rows = sum(len(s) for per in past.values() for s in per.values())
    print(f"  a round's judging over this history: read {rows:,} figures of the last {policy.window_days:g} days in "
          f"{read:.1f} s, judged {nodes} nodes in {judged:.1f} s ({len(findings)} findings)")


def node_page(store: object, node: str) -> None:
    """The dashboard's node checks (series, regressions, the peers' band over the newest 90 rounds), as a
    dashboard process that just started serves it: from the bands the rounds stored, then as a store whose
    rounds predate check_bands makes it compute them from the fleet's figures."""
    import sqlalchemy as sa

    from clusterctl.dashboard.checks import BandCache, node_checks
    from clusterctl.dashboard.views import ReadModel
    from clusterctl.state import schema

    model = ReadModel(store, None)  # type: ignore[arg-type]
    node_checks(model, node, 3650, BandCache())  # the page cache warm, as for the trends above
    started = time.monotonic()
    page = node_checks(model, node, 3650, BandCache())
    stored = time.monotonic() - started
    points = len(page["series"]["gpu.sm_clock_mhz"]["band"])
    with store.transaction() as tx:  # type: ignore[attr-defined]
        tx.connection.execute(sa.delete(schema.check_bands))
    started = time.monotonic()
    again = node_checks(model, node, 3650, BandCache())
    computed = time.monotonic() - started
    same = again["series"] == page["series"]
    print(f"  dashboard node page, cold (a fresh process): {stored * 1000:.0f} ms from the stored bands "
          f"({points} rounds in the band); {computed * 1000:.0f} ms computing them from the fleet's figures as "
          f"before check_bands{'' if same else ' (DIFFERENT bands: a bug)'}; load average {_load()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--per-day", type=int, default=2, help="rounds a day in the synthetic history")
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="200 nodes, 30 days")
    p.add_argument("--skip-round", action="store_true")
    p.add_argument("--skip-trends", action="store_true")
    args = p.parse_args()
    nodes, days = (200, 30) if args.quick else (args.nodes, args.days)
    status = 0
    if not args.skip_round:
        print(f"check_scale: quick round over {nodes} lab nodes, --parallel {args.parallel}")
        status |= lab_round(nodes, args.parallel)
    if not args.skip_trends:
        print(f"check_scale: trends over {days} days x {nodes} nodes of history")
        status |= trends(nodes, days, args.per_day)
    print("check_scale goals:")
    for line in GOALS:
        print("  " + line)
    return status


if __name__ == "__main__":
    sys.exit(main())
