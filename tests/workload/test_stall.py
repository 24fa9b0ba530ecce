"""A hang pinned to its node: real torchrun (gloo, CPU, two ranks), one rank hangs, the watchdog reports
where each rank waits, and the verdict fails the hung rank's node while the other is only incomplete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusterctl.burnin.run import blame
from clusterctl.burnin.verdict import judge

pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 120.0
# Far above a transformer-tiny step even on a loaded 2-core machine (a few ms quiet, seconds at worst): a
# shorter one once reported a busy rank as stalled before the injected hang began, and the test failed.
STALL = "6s"


def _stalled_run(env: dict[str, str]) -> list[dict]:
    """Rank records of a run, read until every rank reported a stall (or the limit); then the run is killed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "workloads.transformer", "--model", "transformer-tiny", "--steps", "500", "--log-every", "1",
           "--checksum-every", "100", "--threads", "1", "--stall-timeout", STALL]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    records: list[dict] = []
    deadline = time.monotonic() + LIMIT_S
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends: the run is killed at the limit below or ends by itself
            if line.startswith('{"clusterctl"'):
                records.append(json.loads(line))
            if {r["rank"] for r in records if r["event"] == "stall"} == {0, 1} or time.monotonic() > deadline:
                break
    finally:
        # SIGTERM first: torchrun ends its workers, which run in sessions of their own (a SIGKILL to
        # torchrun's group would leave them behind, the hung one sleeping).
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return records


def test_the_hung_rank_is_pinned_and_its_waiting_peer_is_incomplete() -> None:
    records = _stalled_run({"CLUSTERCTL_BURNIN_FAULT": "hang:rank=1:step=4",
                            "CLUSTERCTL_RANK_NODES": "node-a,node-b"})
    stalls = {r["rank"]: r for r in records if r["event"] == "stall"}
    assert set(stalls) == {0, 1}, [r for r in records if r["event"] != "step"]
    # The hung rank sits in the fault's sleep, before its step began; its peer waits in the all-reduce.
    assert stalls[1]["where"] == "compute" and stalls[1]["step"] == 4
    assert stalls[1]["stack"][0].startswith("workloads/transformer/faults.py")
    assert stalls[0]["where"] == "collective" and stalls[0]["phase"] == "gradient-all-reduce"
    assert any(frame.startswith("torch/") for frame in stalls[0]["stack"])

    verdicts = judge(records, ["node-a", "node-b"], world_size=2)
    blame(verdicts, records, {})
    by_node = {v.node: v for v in verdicts}
    assert by_node["node-b"].status == "fail"
    assert "rank 1 hung at step 4 outside any collective" in by_node["node-b"].reasons[0]
    assert by_node["node-a"].status == "incomplete"
    assert "stopped because node-b failed first" in by_node["node-a"].reasons[-1]


def test_without_a_culprit_every_stalled_node_still_fails() -> None:
    # Both ranks wait in collectives (as when the network, not a rank, hangs): nobody is pinned, nobody passes.
    records = [
        {"clusterctl": "burnin/v1", "rank": r, "node": f"n{r}", "event": e, **extra}
        for r in (0, 1)
        for e, extra in (("start", {}), ("step", {"step": 1, "loss": 5.0}),
                         ("stall", {"step": 2, "where": "collective", "phase": "gradient-all-reduce", "stack": []}))
    ]
    verdicts = judge(records, ["n0", "n1"], world_size=2)
    blame(verdicts, records, {})
    assert [(v.status, "waiting in a collective at step 2" in v.reasons[0]) for v in verdicts] == [
        ("fail", True), ("fail", True)]
