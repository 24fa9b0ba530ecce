"""Power and cooling rules over telemetry normalised from recorded iDRAC9 payloads.

The telemetry is read by the real Redfish client and `gather_telemetry` (through run_fleet)
from the recorded payloads served in-process, so the rules see what they will see in the field.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.fakebmc import FakeBMC, load_idrac9

from clusterctl.redfish import BMCTarget
from clusterctl.redfish.resources.telemetry import FanReading, PsuReading, Telemetry
from clusterctl.validate.expect import Expectation
from clusterctl.validate.power import merge_telemetry, power_checks, rack_budget_checks
from clusterctl.validate.rules import load_ruleset
from clusterctl.validate.run import judge
from clusterctl.validate.telemetry import gather_telemetry

RULES = load_ruleset("H100-SXM5-80GB")
CHASSIS = "/redfish/v1/Chassis/System.Embedded.1"


def idrac(legacy: bool = False) -> Any:
    bmc = load_idrac9(FakeBMC())
    if legacy:
        for key in ("PowerSubsystem", "ThermalSubsystem", "EnvironmentMetrics", "Sensors"):
            bmc.resources[CHASSIS].pop(key)
    return bmc


def read(bmcs: dict[str, Any]) -> dict[str, tuple[Telemetry | None, str | None]]:
    targets = [BMCTarget(name=n, base_url=f"https://{n}.bmc.test", username="admin", password="s3cret-pw")
               for n in bmcs]
    return gather_telemetry(targets, transport_for=lambda t: httpx.ASGITransport(app=bmcs[t.name]),
                            per_bmc_timeout=30)


def by_name(checks: list[Any]) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail) for c in checks}


def test_recorded_idrac9_psu_failure_and_redundancy() -> None:
    telemetry, error = read({"n1": idrac()})["n1"]
    assert error is None and telemetry is not None
    checks = by_name(power_checks(telemetry, Expectation("n1", psus=2, max_power_w=11000), RULES))
    assert checks["power.psu_health"] == ("fail", "PS2 Status: Critical")
    assert checks["power.psu_redundancy"] == ("fail", "1 of 2 PSUs healthy")
    assert checks["power.fan_health"][0] == "pass"
    assert checks["power.inlet_temp"][0] == "pass" and "inlet 24 °C" in checks["power.inlet_temp"][1]
    assert checks["power.node_power"] == ("pass", "5250 W of max_power_w 11000 W")
    over = by_name(power_checks(telemetry, Expectation("n1", max_power_w=5000), RULES))
    assert over["power.node_power"][0] == "warn" and "power.psu_redundancy" not in over


def test_legacy_thermal_fan_warning_fails_fan_health() -> None:
    telemetry, _ = read({"n1": idrac(legacy=True)})["n1"]
    assert telemetry is not None
    checks = by_name(power_checks(telemetry, Expectation("n1", psus=3), RULES))
    assert checks["power.fan_health"][0] == "fail" and ": Warning" in checks["power.fan_health"][1]
    assert checks["power.psu_redundancy"] == ("fail", "2 of 3 PSUs healthy")


@pytest.mark.parametrize(("inlet", "status"), [(24.0, "pass"), (27.0, "warn"), (31.5, "warn"), (35.0, "fail")])
def test_inlet_temperature_is_graded_by_the_rule_limits(inlet: float, status: str) -> None:
    t = Telemetry(chassis="c", inlet_c=inlet, psus=[PsuReading(name="PS1", health="OK", state="Enabled")],
                  fans=[FanReading(name="F1", health="OK", rpm=9000)])
    assert by_name(power_checks(t, Expectation("n"), RULES))["power.inlet_temp"][0] == status


def test_rack_budget_sums_measured_nodes_of_each_rack() -> None:
    nodes = [Expectation("a1", rack="ra"), Expectation("a2", rack="ra"), Expectation("b1", rack="rb"),
             Expectation("b2", rack="rb")]
    draw = {"a1": 5250.0, "a2": 5250.0, "b1": 3000.0, "b2": None}
    per_node, racks = rack_budget_checks(draw, nodes, {"ra": 11000, "rb": 10000}, RULES)
    assert per_node["a1"].status == per_node["a2"].status == "warn"  # 10500 W > 90 % of 11000 W
    assert racks["ra"] == {"watts": 10500.0, "budget_w": 11000, "status": "warn", "partial": False}
    assert racks["rb"]["status"] == "pass" and racks["rb"]["partial"] is True
    assert "(1 of 2 nodes measured)" in per_node["b2"].detail
    per_node, racks = rack_budget_checks(draw, nodes, {"ra": 10000, "rb": None}, RULES)
    assert per_node["a1"].status == "fail" and "rb" not in racks and "b1" not in per_node


def test_fleet_power_verdicts_with_an_unreachable_bmc() -> None:
    telemetry = read({"a1": idrac(), "a2": idrac()})
    telemetry["a3"] = (None, "cannot connect to 10.0.0.3:443: timed out")
    nodes = [Expectation(n, rack="ra", psus=1, max_power_w=11000) for n in ("a1", "a2", "a3")]
    report = judge(nodes, {None: RULES}, categories={"power"}, telemetry=telemetry, rack_budgets={"ra": 10000})
    verdicts = {v.node: v for v in report.verdicts}
    a3 = by_name(verdicts["a3"].checks)
    # Without telemetry nothing of its PSUs, fans or inlet is known: no acceptance.
    assert a3["power.telemetry"][0] == "fail" and a3["power.telemetry"][1].endswith("timed out")
    assert set(a3) == {"power.telemetry", "power.rack_budget"}  # its rack is over budget all the same
    assert by_name(verdicts["a1"].checks)["power.rack_budget"] == ("fail", "rack ra: 10500 W of 10000 W budget "
                                                                   "(2 of 3 nodes measured)")
    assert report.racks["ra"]["partial"] is True and report.failed


def test_merge_keeps_every_psu_and_the_whole_node_power() -> None:
    a = Telemetry(chassis="System", power_watts=5200, inlet_c=22, psus=[PsuReading(name="PS1", health="OK")])
    b = Telemetry(chassis="GPU", power_watts=4100, psus=[PsuReading(name="PS2", health="OK")])
    merged = merge_telemetry([a, b])
    assert [p.name for p in merged.psus] == ["PS1", "PS2"] and merged.power_watts == 5200 and merged.inlet_c == 22
