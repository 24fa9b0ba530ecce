"""Crash safety of `clusterctl maintain` on real Slurm and the lab: `kill -9` while it waits for a drain,
while it updates, while it resumes and twice at random, the same command each time after; at every kill
no node is drained without a record of why, and in the end every node serves with its new firmware,
applied once, and the nodes resumed before the last kill were not touched again."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.lab import start_lab
from support.maintain_lab import FAST, lab_changes, retarget_firmware, wait_running
from support.slurm import SlurmCluster

from clusterctl.maintain import ledger
from clusterctl.state.store import Store

NODES = ["gpu0001", "gpu0002", "gpu0003", "gpu0004"]
RUNNER = "import sys\nfrom clusterctl.cli import main\nsys.exit(main.run(sys.argv[1:]))\n"


def start(inventory: Path, slurm: SlurmCluster, out: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", RUNNER, "-q", "-o", "json", "maintain", str(inventory), "--yes",
           "--max-unavailable", "2", "--burnin-minutes", "0", "--slurm-conf", str(slurm.conf), *FAST]
    return subprocess.Popen(cmd, stdout=out.open("wb"), stderr=subprocess.PIPE, start_new_session=True)


def wait_for_state(proc: subprocess.Popen[bytes], state: str | None, after: int, limit_s: float = 60.0) -> bool:
    """Until a node enters `state` (None: any state) after event `after` (False if the run ended first)."""
    deadline = time.monotonic() + limit_s
    kind = None if state is None else ledger.PREFIX + state
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        while proc.poll() is None and time.monotonic() < deadline:
            if store.events(after, kind=kind, stage=ledger.STAGE, limit=1):
                return True
            time.sleep(0.05)
    return False


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and whatever scontrol or ssh it had going
    proc.wait(timeout=30)
    assert proc.stderr is not None
    errors = proc.stderr.read().decode(errors="replace")
    assert "Traceback" not in errors, errors


def assert_every_drain_recorded(slurm: SlurmCluster) -> None:
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        states = ledger.last_states(store, NODES)
    for node, reason in slurm.drain_reasons().items():
        assert node in states and states[node].state in ledger.HELD | {"failed"}, (node, reason, states)
        assert reason.startswith("clusterctl maintain"), (node, reason)


def test_kill_nine_during_drain_update_and_resume_then_rerun(slurm: SlurmCluster, tmp_path: Path) -> None:
    rng = random.Random(20261202)
    with start_lab(tmp_path / "lab", 4, time_scale=500) as lab:
        inventory = lab.inventory(tmp_path / "lab.yaml")
        retarget_firmware(inventory, lab.directory, "HGX-H100", "24.07.0")
        job = slurm.run("sbatch", "--parsable", "-w", "gpu0001", "-o", "/dev/null", "--wrap", "sleep 8").strip()
        wait_running(slurm, job)
        resumed_before: dict[str, int] = {}
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            mark = store.last_event_id()
        # After the kill moment: while gpu0001's job still runs, while images are pushed, as nodes come back.
        # Then twice at a random moment of whatever the run does next.
        kills = [("draining", (0.2, 0.5)), ("updating", (0.5, 2.0)), ("resuming", (0.0, 0.05)),
                 (None, (0.0, 2.0)), (None, (0.0, 2.0))]
        for i, (state, delay) in enumerate(kills):
            proc = start(inventory, slurm, tmp_path / f"kill{i}.json")
            reached = wait_for_state(proc, state, mark)
            assert reached or state is None, f"the run never reached {state}"
            time.sleep(rng.uniform(*delay))
            kill(proc)
            assert_every_drain_recorded(slurm)
            with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
                mark = store.last_event_id()
                resumed_before = {n: s.event_id for n, s in ledger.last_states(store, NODES).items()
                                  if s.state == "resumed"}

        proc = start(inventory, slurm, tmp_path / "final.json")
        _, err = proc.communicate(timeout=120)
        doc = json.loads((tmp_path / "final.json").read_text())
        assert proc.returncode == 0, (doc, err.decode(errors="replace"))
        assert slurm.drain_reasons() == {}
        assert set(doc["resumed"]).isdisjoint(resumed_before)  # nodes already resumed were not touched again
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            final = ledger.last_states(store, NODES)
        assert {n: s.state for n, s in final.items()} == dict.fromkeys(NODES, "resumed")
        assert all(final[n].event_id == e for n, e in resumed_before.items())
        changes = lab_changes(lab.directory)
        for node, change in changes.items():
            assert change["firmware"]["gpu"] == "24.07.0", node
            assert all(count == 1 for count in change["firmware_applied"].values()), (node, change)
