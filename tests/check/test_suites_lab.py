"""The standard and deep suites on the lab: each node's short single-node burn-in (burn-in's own launcher and
verdict, through the lab's simulated torchrun), its tokens/s stored per node and round and judged against
peers; deep's ring across racks and DCGM diagnostics skipped with a note where dcgmi does not exist."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_check_lab import DAY, advance, check, lab_factory  # noqa: F401 - the fixture is used by name

from clusterctl.state import schema
from clusterctl.state.store import Store

FAST = ("--burnin-minutes", "0.03", "--burnin-model", "transformer-tiny")


def test_standard_burns_each_node_in_and_deep_adds_rings_and_diagnostics(
    lab_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811 - the fixture
) -> None:
    # gpu0002: one GPU at 80 % of its speed (the burn-in's per-node straggler and the peers' rule);
    # gpu0004: corrupt parameters on GPU 5 (the burn-in's checksums disagree).
    lab = lab_factory(6, [{"node": "gpu0002", "kind": "gpu_slow", "params": {"gpu": 1, "factor": 0.8}},
                          {"node": "gpu0004", "kind": "ecc_uncorrectable", "params": {"gpu": 5, "count": 1}}])
    inventory = lab.inventory(tmp_path / "lab.yaml")
    code, doc = check(capsys, str(inventory), "--suite", "standard", *FAST)
    assert code == 1
    assert "burnin" in doc["seconds"] and "dcgm" not in doc["seconds"]
    by_node = {n["node"]: n for n in doc["nodes"]}
    reasons = {n: " ".join(v["reasons"]) for n, v in by_node.items()}
    assert "checksum differs" in reasons["gpu0004"], reasons["gpu0004"]
    assert "straggler" in reasons["gpu0002"], reasons["gpu0002"]
    assert [f["node"] for f in doc["regressions"] if f["metric"] == "burnin.tokens_per_s"] == ["gpu0002"]
    assert by_node["gpu0001"]["status"] == "pass", by_node["gpu0001"]
    run = doc["run"]
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        t = schema.check_figures
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.node, t.c.metric, t.c.value).where(t.c.run_id == run)).all()
        speed = {n: v for n, m, v in rows if m == "burnin.tokens_per_s"}
        assert sorted(speed) == [f"gpu{i:04d}" for i in range(1, 7)]
        assert speed["gpu0002"] == pytest.approx(0.8 * speed["gpu0001"], rel=0.03)
        assert {n for n, m, _ in rows if m == "burnin.loss"} == set(speed)
        checks = {c.check: c.status for c in store.checks("gpu0001", run_id=run)}
        assert checks["burnin.checksum"] == "pass" and checks["burnin.speed"] == "pass"
        assert {c.check: c.status for c in store.checks("gpu0004", run_id=run)}["burnin.checksum"] == "fail"

    advance(lab, DAY / 4)
    code, doc = check(capsys, str(inventory), "--suite", "deep", *FAST)
    assert {"burnin", "dcgm"} <= set(doc["seconds"])
    by_node = {n["node"]: n for n in doc["nodes"]}
    # The lab's nodes have no dcgmi (only its version string): skipped with a note, never failed for it.
    assert all(n["metrics"]["dcgm"].startswith("skipped: dcgmi is not installed") for n in by_node.values())
    assert not any("dcgm" in r for n in by_node.values() for r in n["reasons"])
    with Store.open(os.environ["CLUSTERCTL_STATE"]) as store:
        t = schema.check_figures
        with store.engine.connect() as conn:
            rings = conn.execute(sa.select(t.c.node, t.c.labels).where(
                (t.c.run_id == doc["run"]) & (t.c.metric == "fabric.ring_busbw_gbs"))).all()
    assert len(rings) == 6  # one ring of every node, across the racks
