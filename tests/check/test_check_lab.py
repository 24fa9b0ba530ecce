"""`clusterctl check` and `clusterctl trends` against the embedded lab, end to end: the agent over real SSH,
telemetry from the lab's Redfish BMCs, every figure in the store, judged against peers and history."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support.cli import run_cli
from support.lab import Lab, labs

from clusterctl.sim import process as lab_process
from clusterctl.state import schema
from clusterctl.state.store import Store

DAY = 86_400.0


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Any]:
    # time scale 1: simulated time moves only when the test advances it (a round's few real
    # seconds add a few simulated seconds), so the day of every round is known.
    with labs(tmp_path, time_scale=1.0) as make:
        yield make


def advance(lab: Lab, seconds: float) -> float:
    info = json.loads((lab.directory / "lab.json").read_text())
    return float(lab_process.control(lab.directory, info, "POST", "/clock", json={"advance_s": seconds})["day"])


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(capsys, "-q", "-o", "json", "check", *args)
    return result.code, result.document("check")


def test_a_quick_round_stores_every_figure_per_node_and_round(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_factory(8)
    inventory = lab.inventory(tmp_path / "lab.yaml")
    runs = []
    for _ in range(2):
        code, doc = check(capsys, str(inventory), "--suite", "quick")
        assert code == 0, doc["regressions"] or [n for n in doc["nodes"] if n["status"] != "pass"]
        assert doc["summary"]["pass"] == 8 and doc["regressions"] == [] and doc["early_warning"] == []
        runs.append(doc["run"])
        advance(lab, DAY / 2)
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        assert [store.run(r).kind for r in runs] == ["check", "check"]
        t = schema.check_figures
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.run_id, t.c.node, t.c.metric, t.c.value, t.c.ts)).all()
        # Both sides: the agent's NVML, kernel log and sysfs, and the BMC's telemetry.
        wanted = {"gpu.sm_clock_mhz", "gpu.temperature_c", "gpu.power_w", "gpu.ecc_corrected", "gpu.remapped_rows",
                  "gpu.xid", "gpu.pcie_replay", "ib.symbol_error", "ib.link_downed", "ib.rate_gbps", "bmc.inlet_c",
                  "bmc.fan_rpm", "bmc.power_w"}
        for run_id in runs:
            for node in (f"gpu{i:04d}" for i in range(1, 9)):
                assert wanted <= {m for r, n, m, _, _ in rows if r == run_id and n == node}
        ts = sorted({row.ts for row in rows})
        assert len(ts) == 2 and ts[1] - ts[0] == pytest.approx(DAY / 2, abs=120)  # dated by the nodes' clock
        assert {c.check for c in store.checks("gpu0001", run_id=runs[0])} >= {"gpu.count", "power.fan_health"}
        assert {s.stage for s in store.node_stages("gpu0001")} == {"check"}


def test_check_refuses_suites_and_launchers_not_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--suite", "fast"], ["--burnin-model", "gpt5"], ["--launcher", "pbs"], ["--drain-on", "maybe"]):
        result = run_cli(capsys, "check", str(tmp_path / "none.yaml"), *args)
        assert result.code == 2 and "Traceback" not in result.err, result.err


def test_drain_on_regression_hands_the_node_to_quarantine_with_the_reason(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # scontrol is the boundary (as in tests/validate): a stand-in records what Slurm would be told.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    lab = lab_factory(8, [{"node": "gpu0003", "kind": "ecc_creep", "params": {"gpu": 1, "per_day": 1000}}])
    inventory = lab.inventory(tmp_path / "lab.yaml")
    codes = []
    for r in range(3):  # days 0, 0.5, 1.0: the first rate needs a reading a day old
        if r:
            advance(lab, DAY / 2)
        code, doc = check(capsys, str(inventory), "--drain-on", "regression", "--drain-via", "slurm")
        codes.append(code)
    assert codes == [0, 0, 1]
    # 1,000 correctable errors a day, and the two rows they remapped (one per 500 in the lab's model).
    assert [(f["node"], f["metric"], f["judge"]) for f in doc["regressions"]] == [
        ("gpu0003", "gpu.ecc_corrected", "rate"), ("gpu0003", "gpu.remapped_rows", "rate")]
    assert [(a["node"], a["ok"]) for a in doc["drained"]] == [("gpu0003", True)]
    told = calls.read_text().splitlines()
    assert len(told) == 1 and told[0].startswith("update nodename=gpu0003 state=drain reason=check")
    assert "correctable ECC errors" in told[0]
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        assert [f.node for f in store.flags(quarantined_only=True)] == ["gpu0003"]


def test_the_standard_suite_names_a_link_losing_bandwidth(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # IB port 2 of gpu0005 loses 4 %/day from day 1.0. Each node's figure is its faster all-reduce pair
    # (a pair runs at its slower node's speed): gpu0005's pairs both slow down, its partners keep one fast.
    # The history rule (5 % below the 7-day median) first holds at day 2.5, 6 % lost: round 5.
    lab = lab_factory(8, [{"node": "gpu0005", "kind": "degrading",
                           "params": {"link": 2, "pct_per_day": 4.0, "start_day": 1.0}}])
    inventory = lab.inventory(tmp_path / "lab.yaml")
    named = {}
    for r in range(6):
        if r:
            advance(lab, DAY / 2)
        code, doc = check(capsys, str(inventory), "--suite", "standard", "--burnin-minutes", "0.02",
                          "--burnin-model", "transformer-tiny")
        for f in doc["regressions"]:
            named.setdefault((f["node"], f["metric"]), r)
        assert {f["node"] for f in doc["regressions"]} <= {"gpu0005"}, doc["regressions"]
    assert named[("gpu0005", "fabric.busbw_gbs")] == 5
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        from clusterctl.check.history import node_series

        mine = node_series(store, "gpu0005", 0, "fabric.busbw_gbs")["fabric.busbw_gbs"]
        partner = node_series(store, "gpu0004", 0, "fabric.busbw_gbs")["fabric.busbw_gbs"]
    assert len(mine) == 6 and mine[-1][1] == pytest.approx(mine[0][1] * 0.94, rel=0.01)
    assert partner[-1][1] == pytest.approx(partner[0][1], rel=0.03)  # the lab's per-pair jitter, far below 5 %


def test_idle_from_slurm_never_touches_a_node_running_a_job(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
        cluster.run("sbatch", "-w", "gpu0002", "-J", "users-work", "-o", "/dev/null", "--wrap", "sleep 120")
        deadline = time.monotonic() + 30
        while cluster.node_states().get("gpu0002") not in ("alloc", "mix"):
            assert time.monotonic() < deadline, cluster.node_states()
            time.sleep(0.3)
        code, doc = check(capsys, str(inventory), "--idle-from", "slurm", "--slurm-conf", str(cluster.conf))
        assert code == 0, doc
        assert [n["node"] for n in doc["nodes"]] == ["gpu0001", "gpu0003", "gpu0004"]
        # One core of its two runs the job: `mixed`, partly in use, is as busy as `allocated` for a check.
        assert list(doc["skipped"]) == ["gpu0002"] and doc["skipped"]["gpu0002"] in ("mixed", "allocated")
        with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
            assert store.node_stages("gpu0002") == [] and len(store.node_stages("gpu0001")) == 1
    finally:
        # The job's slurmstepd outlives slurmd: end the job and wait for its node before stopping Slurm.
        cluster.run("scancel", "-n", "users-work", check=False)
        try:
            cluster.wait_idle(timeout_s=60)
        finally:
            cluster.stop()
