"""The bandwidth check for real: torchrun over paramiko on two sshd hosts, gloo all-reduce on CPU between
them (the code NCCL runs on GPUs), thresholds from a site rules file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.sshd import SSHFleet, fleet_fixture

from clusterctl.cli.main import run
from clusterctl.state.store import Store

pytest.importorskip("torch")


fleet = fleet_fixture("bandwidth-ssh", count=2, subnet=83)


def write_inventory(tmp_path: Path, fleet: SSHFleet) -> Path:
    return fleet.write_inventory(tmp_path / "site.yaml", "ssh-bandwidth")


def site_rules(tmp_path: Path, min_busbw_gbs: float) -> Path:
    path = tmp_path / f"rules-{min_busbw_gbs:g}.yaml"
    params = (f"min_busbw_gbs: {min_busbw_gbs}, min_bytes: 65536, max_bytes: 1048576, warmup: 1, iters: 3, "
              "time_limit_s: 20, timeout_s: 90")
    path.write_text(f"rules:\n  fabric.allreduce_busbw:\n    params: {{{params}}}\n")
    return path


def validate(inventory: Path, rules: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = run(["-q", "-o", "json", "validate", str(inventory), "--checks", "bandwidth", "--rules", str(rules),
                "--bandwidth-python", sys.executable])
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out)
    except ValueError:
        pytest.fail(f"validate printed no JSON (exit {code}): {out[-500:]} {err[-1500:]}")


def test_gloo_all_reduce_between_two_sshd_hosts_passes_a_low_bar_and_fails_an_impossible_one(
        fleet: SSHFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(tmp_path, fleet)
    code, doc = validate(inventory, site_rules(tmp_path, 0.001), capsys)
    assert code == 0, doc
    (pair,) = doc["bandwidth"]["pairs"]
    assert pair["nodes"] == ["host01", "host02"] and pair["error"] is None
    assert pair["busbw_gbs"] > 0.001
    assert [s["bytes"] for s in pair["sizes"]] == [65536, 131072, 262144, 524288, 1048576]
    assert all(s["correct"] and s["busbw_gbs"] > 0 for s in pair["sizes"])
    # Two ranks: nccl-tests' busbw = algbw * 2(n-1)/n equals algbw.
    assert all(s["busbw_gbs"] == pytest.approx(s["algbw_gbs"], rel=1e-3) for s in pair["sizes"])
    for verdict in doc["nodes"]:
        (check,) = verdict["checks"]
        assert check["name"] == "fabric.allreduce_busbw" and check["status"] == "pass", check

    code, doc = validate(inventory, site_rules(tmp_path, 1_000_000), capsys)
    assert code == 1
    for verdict in doc["nodes"]:
        (check,) = verdict["checks"]
        assert check["status"] == "fail" and "slow with every partner" in check["detail"], check
        # Two nodes: nothing tells which one is slow, and the check says so.
        assert "not isolated" in check["detail"]
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        (recorded,) = store.checks("host02", run_id=doc["run"])
    assert recorded.status == "fail"
    assert recorded.data["data"]["threshold_gbs"] == 1_000_000 and recorded.data["data"]["partners"] == ["host01"]
    assert 0 < recorded.data["data"]["busbw_gbs"] < 1_000_000
