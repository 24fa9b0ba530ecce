"""Goal (issue 4/6): full validation of 2,000 lab nodes in under 60 s of wall time.

`clusterctl validate` runs as a real process against a lab process (`python -m clusterctl.sim`) with
the lab's default latencies: every node's agent travels over SSH (paramiko -> the lab's asyncssh
nodes, host keys checked), every BMC is asked for power and cooling over Redfish/TLS. Printed:
wall time, the controller's CPU (user + system, its own process), the lab's CPU, and verdict counts.
`--checks gpu,fabric,software` or `--checks power` time one side alone.

    .venv/bin/python benchmarks/validate_scale.py                  # 2,000 nodes, all checks
    .venv/bin/python benchmarks/validate_scale.py --quick          # 200 nodes: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

GOAL_S = 60.0
START_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 1800.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="200 nodes")
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--checks", default="gpu,fabric,software,power")
    p.add_argument("--latency-ms", type=float, default=None, help="default: the lab's own default")
    args = p.parse_args()
    nodes = 200 if args.quick else args.nodes

    from clusterctl.sim.inventory import render_lab_inventory
    from tests.support.ports import free_port
    from tests.support.process import cpu_seconds, terminate

    with tempfile.TemporaryDirectory(prefix="validate-scale-") as tmp:
        work = Path(tmp)
        lab_dir = work / "lab"
        lab_dir.mkdir(mode=0o700)
        bmc_port, ssh_port = free_port("127.1.0.1", 20000, 60000), free_port("127.2.0.1", 20000, 60000)
        cmd = [sys.executable, "-m", "clusterctl.sim", "--lab-dir", str(lab_dir), "--nodes", str(nodes),
               "--port", str(bmc_port), "--ssh-port", str(ssh_port)]
        if args.latency_ms is not None:
            cmd += ["--latency-ms", str(args.latency_ms)]
        with open(work / "sim.log", "wb") as log:
            lab = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not (lab_dir / "lab.json").exists():
                if lab.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the lab did not start: " + (work / "sim.log").read_text()[-1000:])
                time.sleep(0.2)
            info = json.loads((lab_dir / "lab.json").read_text())
            text = render_lab_inventory(nodes, lab_dir, bmc_port=bmc_port, ssh_port=ssh_port)
            inventory = work / "inventory.yaml"
            inventory.write_text(text)
            env = dict(os.environ, CLUSTERCTL_STATE=f"sqlite:///{work / 'state.db'}")
            lab_cpu0 = cpu_seconds(lab.pid)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "clusterctl", "-q", "-o", "json", "validate", str(inventory), "--checks",
                 args.checks, "--parallel", str(args.parallel)],
                capture_output=True, env=env, timeout=RUN_TIMEOUT_S, check=False,
            )
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            lab_cpu = cpu_seconds(lab.pid) - lab_cpu0
        finally:
            terminate(lab, kill_timeout=5)
    try:
        summary = json.loads(done.stdout)["summary"]
    except (ValueError, KeyError):
        print(f"validate exited {done.returncode} without a report: {done.stderr.decode()[-1500:]}")
        return 1
    controller = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"validate_scale: {nodes} lab nodes, checks {args.checks}, --parallel {args.parallel}, "
          f"lab latency {info.get('latency_ms')} ms")
    print(f"  wall {wall:.1f} s ({wall / nodes * 1000:.1f} ms per node), goal {GOAL_S:.0f} s for 2,000: "
          f"{'met' if wall < GOAL_S and nodes >= 2000 else 'not met' if nodes >= 2000 else 'n/a (fewer nodes)'}")
    print(f"  controller CPU {controller:.1f} s ({controller / nodes * 1000:.1f} ms per node), "
          f"lab CPU {lab_cpu:.1f} s ({lab_cpu / nodes * 1000:.1f} ms per node)")
    print(f"  verdicts: pass {summary['pass']}, warn {summary['warn']}, fail {summary['fail']}"
          f" (exit {done.returncode})")
    return 0 if summary["pass"] == nodes else 1


if __name__ == "__main__":
    sys.exit(main())
