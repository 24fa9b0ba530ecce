"""The figures a round keeps, from the agent's recorded reports (tests/fixtures/validate/agent) and BMC telemetry."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from clusterctl.check.figures import node_figures
from clusterctl.redfish.resources.telemetry import FanReading, Telemetry

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "validate" / "agent"


def report(name: str) -> dict:
    return json.loads((AGENT / f"{name}.json").read_text())


def values(figs: list) -> dict:
    return {f.metric: (f.value, f.labels) for f in figs}


def test_a_healthy_node_reports_its_worst_part_per_metric() -> None:
    got = values(node_figures("n", report("healthy"), None))
    assert got["gpu.sm_clock_mhz"] == (1980.0, {"gpu": 0})
    assert got["gpu.temperature_c"] == (41.0, {"gpu": 7})  # the hottest GPU
    assert got["gpu.ecc_corrected"][0] == 16.0  # 2 on each of 8 GPUs: counters are summed
    assert got["ib.symbol_error"] == (0.0, None) and got["ib.rate_gbps"][0] == 400.0
    assert got["gpu.xid"] == (0.0, None)
    assert "gpu.pcie_replay" not in got  # the recorded GPUs do not support the counter: no figure, not zero


def test_faults_show_in_their_figures() -> None:
    degraded = values(node_figures("n", report("ib-degraded"), None))
    assert degraded["ib.symbol_error"] == (4711.0, {"worst": "mlx5_6"})
    assert degraded["ib.rate_gbps"] == (200.0, {"port": "mlx5_6"})
    xids = values(node_figures("n", report("xid79"), None))
    assert xids["gpu.xid"][0] == 2.0 and xids["gpu.xid.79"][0] == 1.0 and xids["gpu.xid.13"][0] == 1.0
    replaying = copy.deepcopy(report("healthy"))
    replaying["gpu"]["devices"][5]["pcie"]["replay"] = 37
    for dev in replaying["gpu"]["devices"][:5]:
        dev["pcie"]["replay"] = 0
    assert values(node_figures("n", replaying, None))["gpu.pcie_replay"] == (37.0, {"gpu": 5})


def test_bmc_telemetry_figures_and_a_node_without_a_report() -> None:
    telemetry = Telemetry(inlet_c=23.5, power_watts=5100.0,
                          fans=[FanReading(name="Fan 1", rpm=5280), FanReading(name="Fan 2", rpm=4100),
                                FanReading(name="Fan 3", rpm=None)])
    got = values(node_figures("n", None, telemetry))  # SSH failed: the BMC's figures still count
    assert got == {"bmc.inlet_c": (23.5, None), "bmc.power_w": (5100.0, None),
                   "bmc.fan_rpm": (4100.0, {"fan": "Fan 2"})}
    assert node_figures("n", {"agent": 1, "gpu": {"error": "no NVIDIA driver"}}, None) == []
