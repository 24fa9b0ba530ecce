"""The lab's faults that develop over simulated days: degrading, ecc_creep, fan_wear.

Each is read through the views the agent, the BMC and the all-reduce model serve, at instants the
lab clock is moved to (`SimClock.advance`), so the growth per simulated day is exact.
"""

from __future__ import annotations

import pytest

from clusterctl.sim.allreduce import node_peak_gbs
from clusterctl.sim.clock import SimClock
from clusterctl.sim.faults import make_fault
from clusterctl.sim.fleet import SimulatedFleet
from clusterctl.sim.nodeio import agent_report

DAY = 86_400.0


@pytest.fixture
def fleet() -> SimulatedFleet:
    # A slow clock: the real time a test takes adds a few simulated seconds, far below these tolerances.
    return SimulatedFleet(2, "pw", SimClock(time_scale=1.0))


def at_day(fleet: SimulatedFleet, day: float) -> None:
    fleet.clock.advance(day * DAY - fleet.clock.now())


def test_degrading_gpu_loses_speed_by_the_day_from_its_start(fleet: SimulatedFleet) -> None:
    hw = fleet.bmcs[0].hw
    fleet.add_fault(make_fault("gpu0001", "degrading", {"gpu": 2, "pct_per_day": 5, "start_day": 1}))
    at_day(fleet, 1.0)
    assert hw.nvml()[2]["clocks"]["sm_mhz"] == 1980
    at_day(fleet, 3.0)  # two days at 5 %: 10 % slower
    gpu = hw.nvml()[2]
    assert gpu["perf_factor"] == pytest.approx(0.9, abs=1e-4)
    assert gpu["clocks"]["sm_mhz"] == pytest.approx(1782, abs=1)
    assert hw.nvml()[1]["clocks"]["sm_mhz"] == 1980  # only that GPU
    assert fleet.bmcs[1].hw.nvml()[2]["clocks"]["sm_mhz"] == 1980  # only that node
    at_day(fleet, 100.0)
    assert hw.nvml()[2]["perf_factor"] == pytest.approx(0.1)  # bounded: the part is slow, not gone


def test_degrading_link_loses_bandwidth_and_its_symbol_errors_climb(fleet: SimulatedFleet) -> None:
    hw = fleet.bmcs[0].hw
    fleet.add_fault(make_fault("gpu0001", "degrading", {"link": 3, "pct_per_day": 4}))
    healthy = node_peak_gbs(fleet.bmcs[1].hw, 8)
    at_day(fleet, 2.0)
    assert node_peak_gbs(hw, 8) == pytest.approx(healthy * 0.92, rel=1e-3)
    assert hw.ib_ports()[3]["counters"]["symbol_error"] == pytest.approx(320, abs=1)  # 8 % lost x 40 per %
    assert hw.ib_ports()[2]["counters"]["symbol_error"] == 0
    assert hw.nvml()[0]["clocks"]["sm_mhz"] == 1980  # a link fault leaves the GPUs alone


def test_ecc_creep_shows_in_the_agent_report(fleet: SimulatedFleet) -> None:
    hw = fleet.bmcs[0].hw
    fleet.add_fault(make_fault("gpu0001", "ecc_creep", {"gpu": 5, "per_day": 300, "start_day": 0.5}))
    at_day(fleet, 2.5)
    doc = agent_report(hw, [])
    ecc = doc["gpu"]["devices"][5]["ecc"]
    assert ecc["aggregate_corrected"] == pytest.approx(600, abs=1)
    assert ecc["volatile_uncorrected"] == 0  # correctable only: validate's ECC rules still pass it
    assert doc["gpu"]["devices"][5]["remapped_rows"]["correctable"] == 1
    assert doc["time"] == pytest.approx(fleet.clock.wall(), abs=5)  # the node's clock is the lab's


def test_fan_wear_slows_one_fan_at_equal_load(fleet: SimulatedFleet) -> None:
    hw = fleet.bmcs[0].hw
    fleet.add_fault(make_fault("gpu0001", "fan_wear", {"fan": 4, "pct_per_day": 4}))
    before = [f["rpm"] for f in hw.fans()]
    at_day(fleet, 2.5)
    after = [f["rpm"] for f in hw.fans()]
    assert after[3] == pytest.approx(before[3] * 0.9, abs=1)
    assert after[:3] + after[4:] == before[:3] + before[4:]
    assert all(f["healthy"] for f in hw.fans())


def test_the_control_api_moves_the_lab_clock_and_refuses_bad_values(fleet: SimulatedFleet) -> None:
    from clusterctl.sim.control import ControlAPI

    api = ControlAPI(fleet, "t", {})
    auth = {"authorization": "Bearer t"}
    status, doc = api.handle("POST", "/clock", {}, auth, b'{"advance_s": 129600}')
    assert status == 200 and doc["day"] == pytest.approx(1.5, abs=1e-3)
    assert fleet.bmcs[0].hw.days() == pytest.approx(1.5, abs=1e-3)
    for body in (b'{"advance_s": -5}', b'{"advance_s": true}', b'{"advance_s": "1d"}', b"[1]", b"{"):
        assert api.handle("POST", "/clock", {}, auth, body)[0] == 400, body
    assert api.handle("POST", "/clock", {}, {}, b'{"advance_s": 1}')[0] == 401
    assert fleet.bmcs[0].hw.days() == pytest.approx(1.5, abs=1e-3)
