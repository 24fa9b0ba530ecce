"""The engine's pure parts: option parsing, component matching and order, power-gate admission."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clusterctl.inventory import load_inventory
from clusterctl.provision import components as comp
from clusterctl.provision.engine import Engine, Options, ProvisionOptionError, failure_threshold, parse_stages
from clusterctl.provision.power import PowerBudgetTooSmall, PowerGate
from clusterctl.sim.inventory import render_lab_inventory


def test_stage_and_failure_options() -> None:
    assert parse_stages(None) == ["discover", "firmware", "bios", "boot", "os", "validate"]
    assert parse_stages("bios, discover") == ["discover", "bios"]  # pipeline order, whatever was typed
    with pytest.raises(ProvisionOptionError, match="flash"):
        parse_stages("discover,flash")
    assert failure_threshold(None, 100) is None
    assert failure_threshold("3", 100) == 3
    assert failure_threshold("5%", 30) == 2
    assert failure_threshold("1%", 10) == 1
    for bad in ("0", "-1", "0%", "150%", "many"):
        with pytest.raises(ProvisionOptionError):
            failure_threshold(bad, 10)


def test_an_engine_with_a_stage_the_pipeline_lacks_is_refused() -> None:
    # Built from Python rather than --stages: still refused before any node is touched.
    with pytest.raises(ProvisionOptionError, match="configure"):
        Engine(None, None, Options(stages=("discover", "configure")))  # type: ignore[arg-type]


def test_components_match_vendor_names_and_bmc_goes_first() -> None:
    assert comp.matches("iDRAC", "Integrated Dell Remote Access Controller")
    assert comp.matches("ConnectX-7", "Mellanox ConnectX-7 Single Port VPI NDR OSFP Adapter 3")
    assert not comp.matches("BIOS", "System CPLD")
    assert comp.ordered(["ConnectX-7", "BIOS", "PSU", "iDRAC"]) == ["iDRAC", "BIOS", "ConnectX-7", "PSU"]
    installed = comp.installed_versions(
        ["BIOS", "HGX-H100", "PSU"],
        [("BIOS", "2.2.8"), ("NVIDIA HGX-H100 SXM5 80GB GPU 1", "24.03.1"),
         ("NVIDIA HGX-H100 SXM5 80GB GPU 2", "23.10.2"), ("PSU Power Supply 1", "00.1D.7D")],
    )
    assert installed["HGX-H100"] == {"24.03.1", "23.10.2"}
    targets = {"BIOS": "2.3.5", "HGX-H100": "24.03.1", "PSU": "00.1D.7D"}
    assert comp.behind(targets, installed) == ["BIOS", "HGX-H100"]  # one GPU behind is behind


def _inventory(tmp_path: Path, budget: int, max_rebooting: int):  # noqa: ANN202
    text = render_lab_inventory(8, tmp_path).replace("power_budget_w: 96000", f"power_budget_w: {budget}")
    text = text.replace("max_rebooting: 2", f"max_rebooting: {max_rebooting}")
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    return load_inventory(path)


def test_power_gate_admits_within_budget_and_reboot_limit(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, budget=40000, max_rebooting=3)
    nodes = list(inventory.nodes.values())

    async def scenario() -> tuple[int, float]:
        gate = PowerGate(inventory)
        for node in nodes:
            gate.measured(node, 2000)
        peak = 0
        active = 0

        async def reboot(node) -> None:  # noqa: ANN001
            nonlocal peak, active
            async with gate.rebooting(node):
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1

        await asyncio.gather(*(reboot(n) for n in nodes))
        return peak, gate.racks["lab-r01"].peak_w

    peak, peak_w = asyncio.run(scenario())
    # 8 x 2,000 W idle; each reboot adds 9,000 W: two fit in 40 kW (34 kW), three do not (43 kW).
    assert peak == 2 and peak_w == 34000


def test_power_gate_refuses_a_reboot_that_can_never_fit(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, budget=12000, max_rebooting=2)
    node = next(iter(inventory.nodes.values()))

    async def scenario() -> None:
        gate = PowerGate(inventory)
        for other in inventory.nodes.values():
            gate.measured(other, 500)
        async with gate.rebooting(node):
            pass

    with pytest.raises(PowerBudgetTooSmall, match="over the rack's power_budget_w 12000"):
        asyncio.run(scenario())


def test_live_progress_shows_counts_throughput_and_failures() -> None:
    from rich.console import Console

    from clusterctl.provision.engine import Tracker
    from clusterctl.provision.progress import render

    tracker = Tracker(["discover", "firmware"], 3)
    for node in ("n1", "n2", "n3"):
        tracker.update(node, "discover", "running")
    tracker.update("n1", "discover", "done")
    tracker.update("n2", "discover", "failed", "7 GPUs visible, inventory says 8")
    tracker.update("n1", "firmware", "running")
    assert tracker.counts["discover"] == {"pending": 0, "running": 1, "done": 1, "failed": 1}
    console = Console(width=120, record=True)
    console.print(render(tracker))
    text = console.export_text()
    assert "0/3 ready, 1 failed" in text and "nodes/min" in text
    assert "failed n2 at discover: 7 GPUs visible, inventory says 8" in text
