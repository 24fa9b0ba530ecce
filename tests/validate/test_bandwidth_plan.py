"""The bandwidth check's parts without SSH: the pairing plan, the expected figures, isolating a slow node
from pair results, and the lab's simulated answer to the very command the controller sends."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path

import pytest

from clusterctl.cli.main import run
from clusterctl.sim.allreduce import node_peak_gbs, parse_allreduce, run_allreduce
from clusterctl.sim.faults import make_fault
from clusterctl.sim.node import NodeHardware
from clusterctl.ssh import command_line
from clusterctl.validate.bandwidth import (
    PAIR_CHECK,
    RING_CHECK,
    BandwidthRun,
    BenchOptions,
    Measurement,
    bandwidth_checks,
    expected_gbs,
    plan_pairs,
    ring_groups,
)
from clusterctl.validate.expect import Expectation
from clusterctl.validate.rules import load_ruleset

H100 = load_ruleset("H100-SXM5-80GB")
RULESETS = {"H100-SXM5-80GB": H100}


def names(n: int) -> list[str]:
    return [f"n{i:03d}" for i in range(n)]


@pytest.mark.parametrize("n", [*range(2, 20), 63, 64, 1000, 1001])
def test_pairs_cover_every_node_with_two_partners_in_at_most_three_rounds(n: int) -> None:
    nodes = names(n)
    rounds = plan_pairs(nodes)
    assert 1 <= len(rounds) <= 3 and len(rounds) == (1 if n == 2 else 2 if n % 2 == 0 else 3)
    partners: dict[str, set[str]] = {node: set() for node in nodes}
    for pairs in rounds:
        busy = [node for pair in pairs for node in pair]
        assert len(busy) == len(set(busy)), "a node twice in one round"
        for a, b in pairs:
            assert a != b
            partners[a].add(b)
            partners[b].add(a)
    assert all(len(p) == (1 if n == 2 else 2) for p in partners.values()), partners
    every = [frozenset(p) for r in rounds for p in r]
    assert len(every) == len(set(every)) == (1 if n == 2 else n), "a pair measured twice"


def test_fewer_than_two_nodes_have_no_pairs_and_rings_group_by_rack() -> None:
    assert plan_pairs([]) == [] and plan_pairs(["a"]) == []
    expects = [Expectation("a", rack="r1"), Expectation("b", rack="r1"), Expectation("c", rack="r2"),
               Expectation("d", rack="r3"), Expectation("e", rack="r3")]
    assert ring_groups(expects, "rack") == [["a", "b"], ["d", "e"]]
    assert ring_groups(expects, "all") == [["a", "b", "c", "d", "e"]]
    assert ring_groups(expects, "none") == []


def lab_node(name: str, nics: int = 8, rate: int = 400) -> Expectation:
    return Expectation(name, rack="r1", gpu_model="H100-SXM5-80GB", gpu_count=8, ib_hcas=nics, ib_rate_gbps=rate)


def test_expected_figure_is_the_lower_of_the_ib_rails_and_the_models_nvlink_ring() -> None:
    assert expected_gbs(lab_node("a"), H100, nproc=8) == pytest.approx(370.0)  # 8 x 48 = 384 > 370 ring
    assert expected_gbs(lab_node("a"), H100, nproc=1) == pytest.approx(384.0)  # one rank: no NVLink ring
    assert expected_gbs(lab_node("a", nics=4, rate=200), H100, nproc=8) == pytest.approx(96.0)
    assert expected_gbs(Expectation("a", gpu_model="H100-SXM5-80GB", gpu_count=8), H100, nproc=8) is None
    assert expected_gbs(lab_node("a"), load_ruleset("A100-SXM4-80GB"), nproc=8) == pytest.approx(200.0)


def pairs_run(figures: dict[tuple[str, str], float | None], unreachable: dict[tuple[str, str], str] | None = None
              ) -> BandwidthRun:
    unreachable = unreachable or {}
    measured = [Measurement(pair, busbw, None if busbw is not None else "torchrun exited with status 1",
                            (unreachable[pair],) if pair in unreachable else ()) for pair, busbw in figures.items()]
    return BandwidthRun(rounds=[measured])


def statuses(run: BandwidthRun, nodes: list[str], check: str = PAIR_CHECK) -> dict[str, str]:
    checks = bandwidth_checks(run, {n: lab_node(n) for n in nodes}, RULESETS, nproc=8)
    return {n: next(c.status for c in checks[n] if c.name == check) for n in nodes}


def ring_figures(nodes: list[str], slow: dict[str, float]) -> dict[tuple[str, str], float | None]:
    """Pair figures along the plan: the slower node of each pair sets its figure."""
    return {pair: min(slow.get(pair[0], 360.0), slow.get(pair[1], 360.0)) for r in plan_pairs(nodes) for pair in r}


def test_a_slow_node_is_isolated_and_its_partners_pass() -> None:
    nodes = names(8)
    run = pairs_run(ring_figures(nodes, {"n003": 150.0}))
    assert statuses(run, nodes) == {n: "fail" if n == "n003" else "pass" for n in nodes}
    checks = bandwidth_checks(run, {n: lab_node(n) for n in nodes}, RULESETS, nproc=8)
    (slow,) = checks["n003"]
    assert "isolated" in slow.detail and slow.data["isolated"] is True and slow.rule == PAIR_CHECK
    assert slow.data["threshold_gbs"] == pytest.approx(296.0) and slow.data["busbw_gbs"] == 150.0
    assert sorted(slow.data["partners"]) == ["n002", "n004"]
    assert "slow only with n003" in checks["n002"][0].detail


def test_two_neighbouring_slow_nodes_both_fail_and_a_slow_link_alone_is_a_warning_on_both_ends() -> None:
    nodes = names(8)
    assert statuses(pairs_run(ring_figures(nodes, {"n003": 150.0, "n004": 140.0})), nodes) == {
        n: "fail" if n in ("n003", "n004") else "pass" for n in nodes}
    figures = ring_figures(nodes, {})
    figures[("n004", "n005")] = 100.0  # both ends reach 360 with their other partner
    checks = bandwidth_checks(pairs_run(figures), {n: lab_node(n) for n in nodes}, RULESETS, nproc=8)
    assert {n: c[0].status for n, c in checks.items()} == {
        n: "warn" if n in ("n004", "n005") else "pass" for n in nodes}
    assert "suspect the link" in checks["n004"][0].detail and checks["n004"][0].data["suspect_links"] == ["n004-n005"]


def test_everything_slow_cannot_be_isolated_and_an_unreachable_partner_is_not_held_against_a_node() -> None:
    nodes = names(4)
    run = pairs_run(ring_figures(nodes, dict.fromkeys(nodes, 10.0)))
    checks = bandwidth_checks(run, {n: lab_node(n) for n in nodes}, RULESETS, nproc=8)
    assert all(c[0].status == "fail" and "not isolated" in c[0].detail for c in checks.values())

    figures = ring_figures(nodes, {})
    figures[("n000", "n001")] = None
    figures[("n001", "n002")] = None
    run = pairs_run(figures, unreachable={("n000", "n001"): "n001", ("n001", "n002"): "n001"})
    assert statuses(run, nodes) == {"n000": "pass", "n001": "fail", "n002": "pass", "n003": "pass"}


def test_without_an_expected_figure_the_site_sets_the_bar() -> None:
    plain = {n: Expectation(n, gpu_model="H100-SXM5-80GB", gpu_count=1) for n in ("a", "b")}
    run = pairs_run({("a", "b"): 2.5})
    (check,) = bandwidth_checks(run, plain, RULESETS)["a"]
    assert check.status == "warn" and "min_busbw_gbs" in check.detail


def test_a_slow_ring_is_blamed_on_a_member_that_fails_its_pairs_else_on_every_member() -> None:
    nodes = names(6)
    run = pairs_run(ring_figures(nodes, {"n002": 100.0}))
    run.rings = [Measurement(tuple(nodes), 100.0)]
    assert statuses(run, nodes, RING_CHECK) == {n: "fail" if n == "n002" else "pass" for n in nodes}
    run = pairs_run(ring_figures(nodes, {}))
    run.rings = [Measurement(tuple(nodes), 100.0)]
    assert set(statuses(run, nodes, RING_CHECK).values()) == {"fail"}
    run.rings = [Measurement(tuple(nodes), 350.0)]
    assert set(statuses(run, nodes, RING_CHECK).values()) == {"pass"}


# --- the lab's side ------------------------------------------------------------------------------------
def controller_command(rank: int, port: int = 29600, nnodes: int = 2) -> str:
    options = BenchOptions.from_rules(H100, python="/usr/bin/python3", workdir="/opt/clusterctl", nproc=8)
    return command_line(options.command(nnodes, rank, "127.2.0.1", port), options.env(f"gpu000{rank + 1}"))


def test_the_lab_parses_the_command_the_controller_sends() -> None:
    job = parse_allreduce(controller_command(1))
    assert job is not None
    assert (job.nnodes, job.node_rank, job.nproc, job.master) == (2, 1, 8, ("127.2.0.1", "29600"))
    assert (job.min_bytes, job.max_bytes, job.node) == (1 << 20, 1 << 30, "gpu0002")
    assert parse_allreduce("python3 -m workloads.transformer") is None
    assert parse_allreduce(shlex.join(["torchrun", "-m", "workloads.transformer"])) is None


def hardware(name: str, index: int, *faults: tuple[str, dict[str, object]]) -> NodeHardware:
    return NodeHardware(name=name, index=index, faults=[make_fault(name, kind, params) for kind, params in faults])


async def _job(nodes: list[NodeHardware], port: int, rendezvous_s: float = 5.0) -> list[tuple[int, str, str]]:
    async def one(rank: int, hw: NodeHardware) -> tuple[int, str, str]:
        out: list[str] = []
        err: list[str] = []

        async def write(text: str) -> None:
            out.append(text)

        async def error(text: str) -> None:
            err.append(text)

        job = parse_allreduce(controller_command(rank, port, len(nodes)))
        assert job is not None
        status = await run_allreduce(hw, job, write, error, rendezvous_s=rendezvous_s)
        return status, "".join(out), "".join(err)

    return list(await asyncio.gather(*(one(rank, hw) for rank, hw in enumerate(nodes))))


def test_the_lab_pair_runs_at_its_slower_nodes_pace_and_a_lonely_node_times_out() -> None:
    healthy, degraded = hardware("gpu0001", 0), hardware("gpu0002", 1, ("ib_degraded", {"port": 3, "rate_gbps": 200}))
    assert node_peak_gbs(healthy, 8) == pytest.approx(370.0) and node_peak_gbs(degraded, 8) == pytest.approx(192.0)
    down = hardware("gpu0003", 2, ("ib_port_down", {"port": 0}))
    assert node_peak_gbs(down, 8) == pytest.approx(7 * 48.0)

    results = asyncio.run(_job([healthy, degraded], 29601))
    docs = [json.loads(out) for status, out, _ in results]
    assert [status for status, _, _ in results] == [0, 0]
    assert docs[0]["busbw_gbs"] == docs[1]["busbw_gbs"] and 180 < docs[0]["busbw_gbs"] <= 192
    assert [d["node"] for d in docs] == ["gpu0001", "gpu0002"]
    sizes = [r["busbw_gbs"] for r in docs[0]["results"]]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 5  # small messages are latency-bound
    assert docs[0]["world_size"] == 16 and docs[0]["results"][-1]["bytes"] == 1 << 30

    healthy_pair = asyncio.run(_job([healthy, hardware("gpu0004", 3)], 29602))
    assert json.loads(healthy_pair[0][1])["busbw_gbs"] > 0.9 * 370  # jitter and the 1 GiB message's latency

    async def lonely() -> tuple[int, str, str]:
        out: list[str] = []

        async def write(text: str) -> None:
            out.append(text)

        job = parse_allreduce(controller_command(0, 29604))
        assert job is not None
        return await run_allreduce(healthy, job, write, write, rendezvous_s=0.2), "".join(out), ""

    status, text, _ = asyncio.run(lonely())
    assert status == 1 and "rendezvous" in text and "timed out with 1 of 2 nodes" in text
    # A node may join the same address and port again afterwards: nothing of the failed meeting is left.
    again = asyncio.run(_job([healthy, hardware("gpu0005", 4)], 29604))
    assert [s for s, _, _ in again] == [0, 0]


def test_bad_ring_choice_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "lab.yaml"
    from clusterctl.sim.inventory import render_lab_inventory

    inventory.write_text(render_lab_inventory(2, tmp_path))
    code = run(["validate", str(inventory), "--checks", "bandwidth", "--ring", "spine"])
    err = capsys.readouterr().err
    assert code == 2 and "--ring 'spine': choose from none, rack, all" in err and "Traceback" not in err
    code = run(["validate", str(inventory), "--checks", "bandwidth,speed"])
    assert code == 2 and "bandwidth" in capsys.readouterr().err
