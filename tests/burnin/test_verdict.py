"""Verdict rules on rank reports: recorded-shape records, and a real torchrun job with a slowed rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clusterctl.burnin.verdict import Rules, judge

REPO = Path(__file__).resolve().parents[2]


def _job(nodes: list[str], steps: int = 6, speed: dict[str, float] | None = None,
         loss: dict[str, list[float]] | None = None, checksum: dict[str, str] | None = None,
         unfinished: set[str] = frozenset(), throttle: dict[str, int] | None = None) -> list[dict]:
    records = []
    for rank, node in enumerate(nodes):
        base = {"clusterctl": "burnin/v1", "node": node, "rank": rank, "world_size": len(nodes)}
        records.append({**base, "event": "start"})
        for i in range(steps):
            losses = (loss or {}).get(node) or [6.0 - 0.3 * j for j in range(steps)]
            records.append({**base, "event": "step", "step": (i + 1) * 10, "loss": losses[i],
                            "local_tokens_per_s": (speed or {}).get(node, 1000.0) * (1 + 0.01 * (i % 3)),
                            "gpu_throttle_reasons": (throttle or {}).get(node, 0)})
        if node in unfinished:
            continue
        records.append({**base, "event": "checksum", "step": steps * 10,
                        "checksum": (checksum or {}).get(node, "abc")})
        records.append({**base, "event": "end", "status": "done"})
    return records


def _failed(verdicts) -> dict[str, list[str]]:
    return {v.node: v.reasons for v in verdicts if v.status == "fail"}


NODES = [f"gpu{i:04d}" for i in range(1, 9)]


def test_healthy_fleet_passes() -> None:
    assert _failed(judge(_job(NODES), NODES, world_size=8)) == {}


def test_straggler_named_by_peer_comparison() -> None:
    failed = _failed(judge(_job(NODES, speed={"gpu0005": 400.0}), NODES))
    assert list(failed) == ["gpu0005"] and "straggler" in failed["gpu0005"][0]


def test_each_failure_kind_names_the_right_node_and_reason() -> None:
    records = _job(NODES, loss={"gpu0002": [6, 6, float("nan"), 6, 6, 6], "gpu0003": [6, 6.1, 6.2, 6.3, 6.4, 6.5]},
                   checksum={"gpu0004": "bad"}, unfinished={"gpu0006"}, throttle={"gpu0007": 0x40})
    failed = _failed(judge(records, [*NODES, "gpu0099"], rules=Rules(min_local_tokens_per_s=500)))
    assert sorted(failed) == ["gpu0002", "gpu0003", "gpu0004", "gpu0006", "gpu0007", "gpu0099"]
    assert "not finite" in failed["gpu0002"][0]
    assert "not falling" in failed["gpu0003"][0]
    assert "checksum differs" in failed["gpu0004"][0]
    assert "stopped reporting" in failed["gpu0006"][0]
    assert "thermal" in failed["gpu0007"][0]
    assert "no rank reported" in failed["gpu0099"][0]


def test_each_reason_names_its_check_and_remediation_in_the_shared_verdict_shape() -> None:
    verdicts = {v.node: v for v in judge(_job(NODES, throttle={"gpu0007": 0x40}), NODES)}
    (check,) = verdicts["gpu0007"].problems()
    assert (check.name, check.status) == ("burnin.clocks", "fail") and "Check cooling" in (check.remediation or "")
    doc = verdicts["gpu0007"].as_dict()
    assert doc["reasons"] == [check.detail] and doc["checks"][0]["name"] == "burnin.clocks"
    assert {"node", "status", "reasons", "checks", "metrics"} == set(doc)


def test_power_cap_throttling_is_not_a_fault() -> None:
    assert _failed(judge(_job(NODES, throttle={"gpu0001": 0x4}), NODES)) == {}


def test_a_warn_level_finding_marks_the_node_without_failing_the_run(monkeypatch) -> None:
    """The clock-event policy decides the level; a warning is stored but fails and quarantines nothing."""
    from dataclasses import replace

    from clusterctl.burnin.launchers.protocol import Outcome
    from clusterctl.burnin.run import BurninReport, check_rows
    from clusterctl.validate import clock_events

    monkeypatch.setitem(clock_events.POLICY, "sw_power_cap", replace(clock_events.POLICY["sw_power_cap"], load="warn"))
    verdicts = judge(_job(NODES, throttle={"gpu0001": 0x4, "gpu0002": 0x40}), NODES)
    by_node = {v.node: v for v in verdicts}
    assert by_node["gpu0001"].status == "warn" and "SW power cap" in by_node["gpu0001"].reasons[0]
    assert by_node["gpu0002"].status == "fail"
    report = BurninReport(1, "local", "job", Outcome("completed"), verdicts)
    assert set(report.failed) == set(report.to_quarantine) == {"gpu0002"}
    rows = {(r.node, r.check): r for r in check_rows(verdicts)}
    assert rows[("gpu0001", "burnin.clocks")].status == "warn"
    assert rows[("gpu0002", "burnin.clocks")].data["remediation"].startswith("Check cooling")
    assert rows[("gpu0003", "burnin.clocks")].status == rows[("gpu0003", "burnin.speed")].status == "pass"


def test_incomplete_nodes_get_no_check_rows() -> None:
    from clusterctl.burnin.run import blame_unstarted, check_rows

    verdicts = judge(_job(["a", "c"]), ["a", "b", "c"])
    verdicts = [v for v in verdicts if v.node != "a"] + judge([], ["a"])
    blame_unstarted(verdicts, {"b": "connection refused"})
    by_node = {v.node: v.status for v in verdicts}
    assert by_node == {"a": "incomplete", "b": "fail", "c": "pass"}
    assert {r.node for r in check_rows(verdicts)} == {"b", "c"}


def test_throughput_floor_from_rules() -> None:
    failed = _failed(judge(_job(NODES), NODES, rules=Rules(min_local_tokens_per_s=5000)))
    assert sorted(failed) == NODES and "below the floor" in failed["gpu0001"][0]


def test_a_rank_that_stopped_after_its_warm_up_report_is_not_judged_on_speed() -> None:
    # Warm-up speed says nothing: a peer stopped after step 1 only "stopped reporting", even if it looked slow.
    records = _job(["a", "b", "c"], steps=1, speed={"a": 400.0}, unfinished={"a"})
    failed = _failed(judge(records, ["a", "b", "c"], world_size=3))
    assert failed == {"a": ["rank 0 stopped reporting after step 10 (crash or hang)"]}
    # The same report from a run that finished after one report is all there is: it is judged.
    records = _job(["a", "b", "c"], steps=1, speed={"a": 400.0})
    assert "straggler" in _failed(judge(records, ["a", "b", "c"], world_size=3))["a"][0]


def test_a_peer_cut_short_by_a_hang_is_incomplete_even_if_its_few_steps_looked_slow() -> None:
    """Three steps before the hang, on a busy machine, are noise: the waiting peer is not a straggler."""
    from clusterctl.burnin.run import blame

    records = _job(["a", "b"], steps=3, speed={"a": 400.0}, loss={"a": [6.0, 6.1, 6.2], "b": [6.0, 5.9, 5.8]},
                   unfinished={"a", "b"})
    records += [{"clusterctl": "burnin/v1", "rank": 1, "node": "b", "event": "stall", "where": "compute", "step": 4},
                {"clusterctl": "burnin/v1", "rank": 0, "node": "a", "event": "stall", "where": "collective",
                 "step": 4}]
    verdicts = judge(records, ["a", "b"], world_size=2)
    blame(verdicts, records, {})
    assert {v.node: v.status for v in verdicts} == {"a": "incomplete", "b": "fail"}
    # A finished run of the same length is judged on what it reported.
    failed = _failed(judge(_job(["a", "b", "c"], steps=3, speed={"a": 400.0}), ["a", "b", "c"]))
    assert "straggler" in failed["a"][0]


def test_unstarted_node_fails_for_its_reason_and_the_rest_are_incomplete() -> None:
    from clusterctl.burnin.run import blame_unstarted

    nodes = ["a", "b", "c"]
    # "b" never started; "a" stopped mid-run when the job was given up; "c" finished.
    records = [r for r in _job(nodes, unfinished={"a"}) if r["node"] != "b"]
    verdicts = judge(records, nodes, world_size=3)
    blame_unstarted(verdicts, {"b": "unreachable: cannot connect to 10.0.0.2:22: Connection refused"})
    by_node = {v.node: v for v in verdicts}
    assert by_node["b"].status == "fail"
    assert by_node["b"].reasons == ["could not start the burn-in on this node: unreachable: cannot connect to "
                                    "10.0.0.2:22: Connection refused"]
    assert by_node["a"].status == "incomplete" and "could not start on b" in by_node["a"].reasons[-1]
    assert by_node["c"].status == "pass"


def test_a_stall_outside_a_collective_is_a_hang_and_a_stall_inside_one_is_waiting() -> None:
    nodes = ["a", "b"]
    records = _job(nodes, unfinished=set(nodes))
    records += [{"clusterctl": "burnin/v1", "node": "a", "rank": 0, "event": "stall", "step": 61,
                 "where": "collective", "phase": "gradient-all-reduce", "stack": ["torch/autograd/graph.py:1 x"]},
                {"clusterctl": "burnin/v1", "node": "b", "rank": 1, "event": "stall", "step": 61,
                 "where": "compute", "phase": "step", "stack": ["workloads/transformer/faults.py:68 before_step"]}]
    failed = _failed(judge(records, nodes, world_size=2))
    assert failed["a"] == ["rank 0 stopped reporting after step 60 (waiting in a collective at step 61, "
                           "gradient-all-reduce)"]
    assert failed["b"] == ["rank 1 hung at step 61 outside any collective (step in "
                           "workloads/transformer/faults.py:68 before_step): the other ranks waited for it"]


@pytest.mark.parametrize("nproc,slow_rank", [(4, 2)])
def test_real_torchrun_job_names_the_slowed_node(nproc: int, slow_rank: int) -> None:
    pytest.importorskip("torch")
    nodes = [f"gpu{i:04d}" for i in range(1, nproc + 1)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CLUSTERCTL_RANK_NODES": ",".join(nodes),
           "CLUSTERCTL_BURNIN_FAULT": f"slow:rank={slow_rank}:factor=4"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
         "-m", "workloads.transformer", "--model", "transformer-tiny", "--threads", "1",
         "--steps", "40", "--log-every", "5", "--checksum-every", "20"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"clusterctl"')]
    # Four processes share two CPU cores here, so healthy ranks differ by up to ~20%;
    # the injected fault makes one rank 4x slower.
    failed = _failed(judge(records, nodes, world_size=nproc, rules=Rules(straggler_ratio=0.6)))
    assert list(failed) == [nodes[slow_rank]], failed


def test_a_world_that_never_started_costs_each_node_a_count_not_the_rank_list() -> None:
    """12,500 nodes of 8 ranks that never reported: each verdict says how many ranks are missing, and its
    report stays the same size whatever the world (the list on every node made one report 21.8 GiB)."""
    nodes = [f"gpu{i:04d}" for i in range(1, 101)]
    small = judge([], nodes, world_size=800)
    large = judge([], nodes, world_size=100_000)
    assert all(v.metrics["missing_ranks"] == 100_000 for v in large)
    assert all(v.status == "fail" for v in large)
    assert json.dumps(large[0].as_dict()) == json.dumps(small[0].as_dict()).replace("800", "100000")
