"""The rollout starts nodes while the fleet's drift is still being read: a node goes as soon as its own drift
is known, the canaries still first and alone, the floor still held. The drift read and each node's work are
replaced here (the lab tests run them for real), so what is checked is the order the rollout keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.maintain_lab import without_scheduler

from clusterctl.inventory import Inventory, Node, load_inventory
from clusterctl.maintain import rollout as rollout_module
from clusterctl.maintain.drift import NodeDrift
from clusterctl.maintain.rollout import MaintainOptions, Rollout
from clusterctl.sim.inventory import render_lab_inventory
from clusterctl.state.store import Store

FIRST_READ = 3


def drift(node: str) -> NodeDrift:
    return NodeDrift(node, changes={"firmware": {"HGX-H100": {"from": "23.10.2", "to": "24.03.1"}}})


class Fleet:
    """A drift read that gives its first nodes, then holds the rest back until one node has started (a rollout
    that waits for the whole read never gets there), and node work that records its order."""

    def __init__(self, *, fail: bool = False) -> None:
        self.log: list[tuple[str, Any]] = []
        self.fail = fail
        self.out: set[str] = set()
        self.peak = 0
        self.started: asyncio.Event | None = None

    async def stream(self, inventory: Inventory, nodes: list[Node], **_: Any) -> AsyncIterator[list[NodeDrift]]:
        self.started = asyncio.Event()
        names = [n.name for n in nodes]
        self.log.append(("read", names[:FIRST_READ]))
        yield [drift(n) for n in names[:FIRST_READ]]
        await asyncio.wait_for(self.started.wait(), 30)
        self.log.append(("read", names[FIRST_READ:]))
        yield [drift(n) for n in names[FIRST_READ:]]

    async def batch(self, rollout: Rollout, batch: list[Node], drifts: dict[str, NodeDrift]) -> None:
        names = [n.name for n in batch]
        assert all(n in drifts for n in names)
        self.log.append(("start", names))
        rollout.held.update(names)
        rollout.claimed.difference_update(names)
        self.out.update(names)
        self.peak = max(self.peak, len(self.out))
        assert self.started is not None
        self.started.set()
        await asyncio.sleep(0.05)
        assert rollout.report is not None
        for name in names:
            self.out.discard(name)
            rollout.held.discard(name)
            if self.fail:
                rollout.report.failed[name] = "validate: gpu.count"
            else:
                rollout.report.resumed.append(name)
        self.log.append(("end", names))


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fleet: Fleet, **options: Any) -> rollout_module.Report:
    inventory_file = tmp_path / "lab.yaml"
    inventory_file.write_text(render_lab_inventory(8, tmp_path))
    inventory = load_inventory(without_scheduler(inventory_file))
    monkeypatch.setattr(rollout_module, "observe_stream", fleet.stream)
    monkeypatch.setattr(Rollout, "_batch", lambda self, batch, drifts: fleet.batch(self, batch, drifts))
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        rollout = Rollout(inventory, store, MaintainOptions(poll_s=0.05, burnin_minutes=0, **options))
        return asyncio.run(rollout.run(list(inventory.nodes.values())))


def test_nodes_start_while_the_drift_is_read_canaries_first_under_the_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet()
    report = run(tmp_path, monkeypatch, fleet, canary=2, max_unavailable="3")
    assert report.stopped is None and sorted(report.resumed) == sorted(report.drifted) and len(report.drifted) == 8
    first = fleet.log[0][1]
    reads = [i for i, e in enumerate(fleet.log) if e[0] == "read"]
    starts = [i for i, e in enumerate(fleet.log) if e[0] == "start"]
    assert reads[0] < starts[0] < reads[1], fleet.log  # nodes started before the rest of the fleet was read
    assert fleet.log[starts[0]] == ("start", first[:2])  # the canaries, the first two read, alone ...
    assert fleet.log.index(("end", first[:2])) < starts[1], fleet.log  # ... until they came back
    assert fleet.peak == 3  # the floor: never more than --max-unavailable out at once, and it is used
    assert 0 < report.observe_s <= report.read_s


def test_a_failed_canary_stops_the_rollout_before_the_rest_is_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(fail=True)  # whichever node is the canary fails
    report = run(tmp_path, monkeypatch, fleet, canary=1, max_unavailable="3")
    assert report.stopped == f"canary failed on {fleet.log[0][1][0]}", report
    assert [e for e in fleet.log if e[0] == "start"] == [("start", fleet.log[0][1][:1])], fleet.log

