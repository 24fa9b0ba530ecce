"""`check --launcher slurm` on the real multi-slurmd test Slurm: each idle node is held by its own low-priority
exclusive job while the round runs; a node running a user's job is never chosen, and a node that got busy after
sinfo's look is found at the re-check (its hold job cannot start) and skipped, the user's job untouched."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from test_check_lab import check, lab_factory  # noqa: F401 - the fixture is used by name

from clusterctl.check import hold


def test_slurm_launcher_holds_only_idle_nodes_and_never_preempts(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from support.slurm import SlurmCluster, available

    why = available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the real Slurm must run in CI: {why}")
        pytest.skip(why)
    names = [f"gpu{i:04d}" for i in range(1, 5)]
    cluster = SlurmCluster(tmp_path / "slurm", names, partition="gpu")
    try:
        lab = lab_factory(4)
        inventory = lab.inventory(tmp_path / "lab.yaml")
        cluster.run("sbatch", "-w", "gpu0002", "-J", "users-work", "-o", "/dev/null", "--wrap", "sleep 300")
        deadline = time.monotonic() + 30
        while cluster.node_states().get("gpu0002") not in ("alloc", "mix"):
            assert time.monotonic() < deadline, cluster.node_states()
            time.sleep(0.3)
        code, doc = check(capsys, str(inventory), "--launcher", "slurm", "--slurm-conf", str(cluster.conf))
        assert code == 0, doc
        assert [n["node"] for n in doc["nodes"]] == ["gpu0001", "gpu0003", "gpu0004"]
        assert list(doc["skipped"]) == ["gpu0002"]
        assert sorted(doc["held"]) == ["gpu0001", "gpu0003", "gpu0004"]
        for node, job_id in doc["held"].items():
            shown = cluster.run("scontrol", "show", "job", job_id)
            assert f"NodeList={node}" in shown and "Nice=10000" in shown and "OverSubscribe=NO" in shown, shown
        deadline = time.monotonic() + 30  # released at the end: scancel was sent, slurmctld ends them
        while any("JobState=CANCELLED" not in cluster.run("scontrol", "show", "job", j) for j in doc["held"].values()):
            assert time.monotonic() < deadline, cluster.run("squeue")
            time.sleep(0.3)

        # The race: sinfo looked before the user's job started. The hold job on gpu0002 cannot start beside it.
        monkeypatch.setattr(hold, "slurm_states", lambda names, conf=None: dict.fromkeys(names, "idle"))
        holds = hold.hold_idle(names, dict.fromkeys(names, "gpu"), minutes=2, slurm_conf=str(cluster.conf),
                               start_timeout_s=4)
        try:
            assert sorted(holds.held) == ["gpu0001", "gpu0003", "gpu0004"]
            assert holds.skipped["gpu0002"].startswith("busy: its hold job")
        finally:
            hold.release(holds, str(cluster.conf))
        deadline = time.monotonic() + 30
        while (queue := cluster.run("squeue", "-h", "-o", "%j|%T|%N")).split() != ["users-work|RUNNING|gpu0002"]:
            assert time.monotonic() < deadline and "users-work|RUNNING|gpu0002" in queue, queue  # never preempted
            time.sleep(0.3)  # the hold jobs end (COMPLETING, then gone)
    finally:
        cluster.run("scancel", "-n", "users-work", check=False)
        cluster.run("scancel", "-n", hold.JOB_NAME, check=False)
        try:
            cluster.wait_idle(timeout_s=60)
        finally:
            cluster.stop()
