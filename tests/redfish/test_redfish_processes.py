"""run_fleet spread over worker processes: what one process gives, failures per BMC, no worker left behind.

Against the lab in its own process (spawned workers cannot reach an in-process fake BMC).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.lab import Lab, start_lab
from support.ports import free_port

from clusterctl import eventloop
from clusterctl.fanout import TargetResult
from clusterctl.inventory import load_inventory
from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy, run_fleet
from clusterctl.redfish.processes import auto_processes
from clusterctl.redfish.target import targets_for

NODES = 6
SYSTEM = "/redfish/v1/Systems/System.Embedded.1"
QUICK = RetryPolicy(attempts=1)


async def identity(bmc: RedfishClient) -> dict[str, Any]:
    """What stays put on a BMC between two sweeps; module-level, so that it crosses to the workers."""
    system = await bmc.get(SYSTEM)
    return {"root": bmc.root.get("UUID"), "serial": system.get("SerialNumber"), "model": system.get("Model"),
            "auth": bmc.auth_mode, "pid": os.getpid()}


def _children() -> set[int]:
    """This process's live children, from /proc (any thread may have started them)."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(pid) for pid in text)
    return found


def _targets(lab: Lab, tmp_path: Path) -> list[BMCTarget]:
    inventory = load_inventory(lab.inventory(tmp_path / "inventory.yaml"))
    targets = list(targets_for(inventory, inventory.select(None)).values())
    some = targets[0]
    # Nothing listens here: connection refused, this BMC's error and no one else's.
    dead = BMCTarget("dead", f"https://127.0.0.1:{free_port('127.0.0.1')}", some.username, some.password,
                     verify=some.verify)
    return [*targets[:3], dead, *targets[3:]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with start_lab(tmp_path_factory.mktemp("lab") / "lab", NODES, ssh_port=0) as running:
        yield running


def _view(results: list[TargetResult[Any]]) -> list[tuple[Any, ...]]:
    return [(r.target, r.ok, r.value and {k: v for k, v in r.value.items() if k != "pid"}, r.error_type, r.error)
            for r in results]


def test_spread_over_processes_gives_what_one_process_gives(lab: Lab, tmp_path: Path) -> None:
    targets = _targets(lab, tmp_path)
    alone = eventloop.run(run_fleet(targets, identity, retry=QUICK, processes=1))
    before = _children()
    landed: list[str] = []
    spread = eventloop.run(run_fleet(targets, identity, retry=QUICK, processes=3,
                                     on_done=lambda r: landed.append(r.target)))

    assert _view(spread) == _view(alone)
    assert [r.target for r in spread] == [t.name for t in targets]
    assert sum(r.ok for r in spread) == NODES and all(r.value["serial"] for r in spread if r.ok)
    dead = spread[3]
    assert (dead.target, dead.ok, dead.error_type) == ("dead", False, "BMCUnreachable")
    assert sorted(landed) == sorted(t.name for t in targets)  # progress saw each BMC once
    # Three processes really swept: this one and two workers, which are gone once the call returns.
    pids = {r.value["pid"] for r in spread if r.ok}
    assert len(pids) == 3 and os.getpid() in pids
    assert not pids & _children()
    assert _children() <= before


async def unpicklable(bmc: RedfishClient) -> Any:
    return lambda: bmc.name


def test_a_value_that_cannot_come_back_is_its_bmcs_error(lab: Lab, tmp_path: Path) -> None:
    targets = _targets(lab, tmp_path)[:3]  # the worker gets the second
    results = eventloop.run(run_fleet(targets, unpicklable, retry=QUICK, processes=2))
    assert [r.ok for r in results] == [True, False, True]
    assert "could not be sent back" in (results[1].error or "") and results[1].target == targets[1].name


def test_an_operation_a_worker_cannot_import_is_refused_before_any_worker_starts(lab: Lab, tmp_path: Path) -> None:
    async def closure(bmc: RedfishClient) -> None: ...

    before = _children()
    with pytest.raises(ValueError, match="module-level function"):
        eventloop.run(run_fleet(_targets(lab, tmp_path), closure, processes=2))
    closure.__module__ = "__main__"
    with pytest.raises(ValueError, match="importable module"):
        eventloop.run(run_fleet(_targets(lab, tmp_path), closure, processes=2))
    assert _children() <= before


def test_a_worker_that_dies_fails_only_its_own_bmcs(tmp_path: Path) -> None:
    # Every other BMC is slow, and round-robin deals those to the one worker: it is mid-sweep when killed.
    slow = [{"node": f"gpu{i:04d}", "kind": "bmc_slow", "params": {"delay_ms": 5000}} for i in (2, 4)]
    with start_lab(tmp_path / "lab", 4, slow, ssh_port=0) as lab:
        inventory = load_inventory(lab.inventory(tmp_path / "inventory.yaml"))
        targets = list(targets_for(inventory, inventory.select(None)).values())
        before = _children()
        killed: list[int] = []

        def kill_the_worker(_result: TargetResult[Any]) -> None:
            if not killed:  # the first result is this process's own (the worker's BMCs are slow)
                for pid in _children() - before:
                    if b"clusterctl.redfish.processes" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)

        results = eventloop.run(run_fleet(targets, identity, retry=QUICK, processes=2, on_done=kill_the_worker))

    assert len(killed) == 1
    assert [(r.target, r.ok) for r in results] == [(t.name, i % 2 == 0) for i, t in enumerate(targets)]
    for r in results[1::2]:
        assert r.error_type == "WorkerDied" and "exit code -9" in (r.error or ""), r
    assert _children() <= before


def test_a_cancelled_sweep_leaves_no_worker(tmp_path: Path) -> None:
    slow = [{"node": f"gpu{i:04d}", "kind": "bmc_slow", "params": {"delay_ms": 5000}} for i in (1, 2, 3, 4)]
    with start_lab(tmp_path / "lab", 4, slow, ssh_port=0) as lab:
        inventory = load_inventory(lab.inventory(tmp_path / "inventory.yaml"))
        targets = list(targets_for(inventory, inventory.select(None)).values())
        before = _children()
        seen: list[set[int]] = []

        async def go() -> None:
            sweep = asyncio.ensure_future(run_fleet(targets, identity, retry=QUICK, processes=2))
            for _ in range(600):  # until the worker runs (bounded: 60 s)
                await asyncio.sleep(0.1)
                if _children() - before:
                    break
            seen.append(_children() - before)
            await asyncio.sleep(0.5)
            sweep.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sweep

        eventloop.run(go())

    assert seen and seen[0], "a worker was started"
    assert _children() <= before


def test_auto_processes_pays_only_for_large_fleets() -> None:
    cores = len(os.sched_getaffinity(0))
    assert auto_processes(10) == 1
    assert auto_processes(499) == 1
    assert auto_processes(1000) == min(2, cores)
    assert auto_processes(10**6) == cores


def test_bmc_telemetry_spread_over_processes_prints_what_one_process_prints(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.cli import run_cli

    from clusterctl.redfish import processes

    inventory = lab.inventory(tmp_path / "inventory.yaml")
    alone = run_cli(capsys, "-o", "json", "bmc", "telemetry", inventory)
    monkeypatch.setattr(processes, "auto_processes", lambda fleet: 2)  # a 6-node lab would get 1
    before = _children()
    spread = run_cli(capsys, "-o", "json", "bmc", "telemetry", inventory)

    def readings(result: Any) -> list[tuple[Any, ...]]:
        # Power and temperatures move between two reads; which chassis, PSUs and fans each BMC has does not.
        return [(r["bmc"], r["ok"], [(t["chassis"], len(t["psus"]), len(t["fans"])) for t in r["value"]])
                for r in result.document("bmc telemetry")]

    assert (alone.code, spread.code) == (0, 0), spread.err[-2000:]
    assert readings(spread) == readings(alone) and len(readings(spread)) == NODES
    assert _children() <= before
