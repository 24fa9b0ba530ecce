"""`clusterctl validate --checks bandwidth` on the embedded lab: real SSH (paramiko to the lab's asyncssh
nodes), the lab's nodes meeting at each job's rendezvous and answering with the figures their fabric
allows. One slowed node among 64 must fail alone, isolated, with its partners passing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli
from support.lab import Lab, lab_from_param  # noqa: F401 - the `lab` fixture

from clusterctl.state.store import Store


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(capsys, "-q", "-o", "json", "validate", *args)
    return result.code, result.document("validate")


SLOW = "gpu0030"  # one IB port at HDR 200: NCCL's rails all run at the slowest port's pace
SLOW_FAULT = {"node": SLOW, "kind": "ib_degraded", "params": {"port": 5, "rate_gbps": 200, "symbol_errors": 0}}


@pytest.mark.parametrize("lab", [(64, [SLOW_FAULT])], indirect=True)
def test_one_slowed_node_among_64_fails_alone_and_its_partners_pass(
        lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = lab.inventory(tmp_path / "lab.yaml")
    started = time.monotonic()
    code, doc = validate(capsys, str(inventory), "--checks", "bandwidth", "--ring", "rack", "--parallel", "32")
    elapsed = time.monotonic() - started
    assert code == 1
    verdicts = {v["node"]: v for v in doc["nodes"]}
    assert len(verdicts) == 64
    assert [n for n, v in verdicts.items() if v["status"] != "pass"] == [SLOW]
    slow = {c["name"]: c for c in verdicts[SLOW]["checks"]}
    assert slow["fabric.allreduce_busbw"]["status"] == "fail"
    assert "isolated" in slow["fabric.allreduce_busbw"]["detail"]
    assert "not isolated" not in slow["fabric.allreduce_busbw"]["detail"]
    assert slow["fabric.allreduce_busbw"]["remediation"].startswith("Check the node's HCAs")
    # Its rack's ring runs at its pace: the ring fails for the rack, which the pairs then explain.
    assert slow["fabric.allreduce_ring"]["status"] == "fail"

    bandwidth = doc["bandwidth"]
    assert bandwidth["rounds"] == 2 and len(bandwidth["pairs"]) == 64 and len(bandwidth["rings"]) == 8
    partners = {p["nodes"][0] if p["nodes"][1] == SLOW else p["nodes"][1]
                for p in bandwidth["pairs"] if SLOW in p["nodes"]}
    assert partners == {"gpu0029", "gpu0031"}
    for pair in bandwidth["pairs"]:
        assert pair["error"] is None and pair["busbw_gbs"] > 0
        # 8 NDR rails and an H100 ring: ~370 GB/s; with one port at HDR the node's rails give ~192.
        assert (pair["busbw_gbs"] < 200) == (SLOW in pair["nodes"]), pair
    for partner in partners:
        check = next(c for c in verdicts[partner]["checks"] if c["name"] == "fabric.allreduce_busbw")
        assert check["status"] == "pass" and f"slow only with {SLOW}" in check["detail"]

    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        recorded = {c.check: c for c in store.checks(SLOW, run_id=doc["run"])}
    data = recorded["fabric.allreduce_busbw"].data["data"]
    assert recorded["fabric.allreduce_busbw"].status == "fail"
    assert data["expected_gbs"] == pytest.approx(370.0) and data["threshold_gbs"] == pytest.approx(296.0)
    assert set(data["partners"]) == partners and data["busbw_gbs"] < data["threshold_gbs"]
    assert elapsed < 60, elapsed


@pytest.mark.parametrize("lab", [(9, [])], indirect=True)
def test_an_unreachable_node_fails_alone_and_the_rest_still_pair(
        lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = lab.inventory(tmp_path / "lab.yaml", unreachable="gpu0004")
    code, doc = validate(capsys, str(inventory), "--checks", "bandwidth", "--connect-timeout", "2")
    assert code == 1
    bad = {v["node"]: v["checks"][0] for v in doc["nodes"] if v["status"] != "pass"}
    assert list(bad) == ["gpu0004"]
    assert bad["gpu0004"]["detail"].startswith("not measured:") and "127.2.250.250" in bad["gpu0004"]["detail"]
    # Nine nodes, one left out: eight pair along a ring in two rounds, and everyone has two partners.
    assert doc["bandwidth"]["rounds"] == 2 and len(doc["bandwidth"]["pairs"]) == 8
    assert doc["bandwidth"]["not_ready"].keys() == {"gpu0004"}


@pytest.mark.parametrize("lab", [(8, [{"node": "gpu0003", "kind": "ib_slow", "params": {"factor": 0.5}}])],
                         indirect=True)
def test_a_fabric_that_looks_healthy_but_runs_slow_is_caught_only_by_the_bandwidth_check(
        lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = lab.inventory(tmp_path / "lab.yaml")
    code, doc = validate(capsys, str(inventory), "--checks", "fabric,bandwidth")
    assert code == 1
    verdicts = {v["node"]: v for v in doc["nodes"]}
    assert [n for n, v in verdicts.items() if v["status"] != "pass"] == ["gpu0003"]
    checks = {c["name"]: c["status"] for c in verdicts["gpu0003"]["checks"]}
    assert checks["fabric.allreduce_busbw"] == "fail"
    # Every port Active at full rate with clean counters: the port checks have nothing to say.
    assert [name for name, status in checks.items() if status != "pass"] == ["fabric.allreduce_busbw"]
    assert sum(name.startswith("fabric.") and name != "fabric.allreduce_busbw" for name in checks) > 0
