"""`clusterctl maintain status|pause|resume|abort` against a running rollout (its own process) on the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support.cli import CLI
from support.lab import start_lab
from support.maintain_lab import FAST, without_scheduler

from clusterctl.maintain import ledger
from clusterctl.state.store import Store

RUNNER = "import sys\nfrom clusterctl.cli import main\nsys.exit(main.run(sys.argv[1:]))\n"


def events(kind: str, after: int = 0) -> list:
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        return store.events(after, kind=ledger.PREFIX + kind)


def wait_for(kind: str, after: int, proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> int:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        found = events(kind, after)
        if found:
            return found[0].id
        time.sleep(0.05)
    raise AssertionError(f"no maintain.{kind} event within {limit_s} s (run exit {proc.poll()})")


def test_pause_stops_new_nodes_resume_goes_on_abort_leaves_the_node_out_with_a_reason(
        tmp_path: Path, cli: CLI) -> None:
    with start_lab(tmp_path / "lab", 4, time_scale=500) as lab:
        inventory = without_scheduler(lab.inventory(tmp_path / "lab.yaml"))
        out = tmp_path / "run.json"
        cmd = [sys.executable, "-c", RUNNER, "-q", "-o", "json", "maintain", str(inventory), "--yes",
               "--max-unavailable", "1", "--burnin-minutes", "0", *FAST]
        proc = subprocess.Popen(cmd, stdout=out.open("wb"), stderr=subprocess.PIPE, start_new_session=True)
        try:
            first = wait_for("resumed", 0, proc)
            assert cli("maintain", "pause")[0] == 0
            time.sleep(3)  # the node in flight when pause came may finish; no other starts
            started = len(events("draining"))
            time.sleep(2)
            assert len(events("draining")) == started <= 2
            code, status, err = cli("-o", "json", "maintain", "status")
            assert code == 0 and status["control"] == "pause", (status, err)
            assert {n["node"]: n["state"] for n in status["nodes"]}["gpu0001"] == "resumed"

            mark = events("draining")[-1].id
            assert cli("maintain", "resume")[0] == 0
            wait_for("updating", mark, proc)
            assert cli("maintain", "abort")[0] == 0
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        doc = json.loads(out.read_text())
        assert proc.returncode == 1 and doc["stopped"].startswith("aborted"), (doc, err.decode(errors="replace"))
        assert first and len(doc["held"]) == 1, doc
        (node, reason), = doc["held"].items()
        assert reason.startswith("clusterctl maintain aborted before: ")
        code, status, _ = cli("-o", "json", "maintain", "status")
        shown = {n["node"]: n for n in status["nodes"]}
        assert shown[node]["state"] == "aborted" and shown[node]["reason"] == reason
        # Time spent in each state, from the events: gpu0001 went through all of them and is done.
        spent = shown["gpu0001"]["time_in_states_s"]
        assert {"draining", "drained", "updating", "updated", "validating", "resuming"} <= set(spent)
        assert "resumed" not in spent and spent["updating"] > 0
        assert status["run"]["status"] == "failed" and status["control"] == "abort"
