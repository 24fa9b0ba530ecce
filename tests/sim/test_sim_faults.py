"""Every fault kind shows where it should: BMC ones through Redfish, node ones in the hardware model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from clusterctl.sim.allreduce import node_peak_gbs
from clusterctl.sim.errors import FaultError
from clusterctl.sim.faults import DEVELOPING_KINDS, FAULT_KINDS, load_fault_file, make_fault, parse_param_args
from clusterctl.sim.fleet import SimulatedFleet

V1 = "/redfish/v1"
SYS = f"{V1}/Systems/System.Embedded.1"
CHA = f"{V1}/Chassis/System.Embedded.1"
MGR = f"{V1}/Managers/iDRAC.Embedded.1"
UPDATE = f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate"


def add(fleet: SimulatedFleet, kind: str, **params: object) -> None:
    fleet.add_fault(make_fault("gpu0001", kind, params, fleet.names))


async def sel_messages(bmc: httpx.AsyncClient) -> list[str]:
    page = (await bmc.get(f"{MGR}/LogServices/Sel/Entries")).json()
    return [(await bmc.get(m["@odata.id"])).json()["Message"] for m in page["Members"]]


@pytest.mark.anyio
async def test_bmc_slow_delays_answers(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "bmc_slow", delay_ms=300)
    start = time.monotonic()
    assert (await bmc.get(SYS)).status_code == 200
    assert time.monotonic() - start >= 0.3
    fleet.clear_faults("gpu0001", "bmc_slow")
    start = time.monotonic()
    await bmc.get(SYS)
    assert time.monotonic() - start < 0.3


@pytest.mark.anyio
async def test_bmc_503_has_retry_after(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "bmc_503", retry_after=7)
    response = await bmc.get(SYS)
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    fleet.clear_faults()
    assert (await bmc.get(SYS)).status_code == 200


@pytest.mark.anyio
async def test_bmc_unreachable_never_answers(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "bmc_unreachable")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(bmc.get(SYS), timeout=0.5)
    other = await bmc.get("https://127.1.0.2:8443" + SYS)
    assert other.status_code == 200
    fleet.clear_faults("gpu0001")
    assert (await bmc.get(SYS)).status_code == 200


@pytest.mark.anyio
async def test_session_limit(anon: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "session_limit", max=1)
    login = {"UserName": "root", "Password": "lab-test-pw"}
    assert (await anon.post(f"{V1}/SessionService/Sessions", json=login)).status_code == 201
    assert (await anon.post(f"{V1}/SessionService/Sessions", json=login)).status_code == 503


@pytest.mark.anyio
@pytest.mark.parametrize("kind,state", [("firmware_update_fails", "Failed"), ("firmware_update_hangs", "Running"),
                                        ("firmware_completes_with_errors", "CompletedWithErrors")])
async def test_firmware_faults(bmc: httpx.AsyncClient, fleet: SimulatedFleet, kind: str, state: str) -> None:
    add(fleet, kind, component="gpu")
    bios = await bmc.post(UPDATE, json={"ImageURI": "http://r/BIOS_1.6.2.EXE"})
    gpu = await bmc.post(UPDATE, json={"ImageURI": "http://r/GPU_96.00.AF.00.01.fwpkg"})
    fleet.clock.advance(30)  # staged jobs run at a reset only once downloaded, as on iDRAC
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(36_000)
    gpu_task = (await bmc.get(gpu.headers["Location"])).json()
    assert gpu_task["Oem"]["Dell"]["JobState"] == state
    assert (await bmc.get(bios.headers["Location"])).json()["TaskState"] == "Completed"
    report = fleet.bmcs[0].report()
    assert report["firmware"]["gpu"] == "23.10.2"
    assert report["firmware_failed"] == ({} if state == "Running" else {"gpu": 1})


@pytest.mark.anyio
async def test_reboot_fails_ends_configuration_jobs_reboot_failed(bmc: httpx.AsyncClient,
                                                                 fleet: SimulatedFleet) -> None:
    add(fleet, "reboot_fails")
    await bmc.patch(f"{SYS}/Bios/Settings", json={"Attributes": {"ProcCStates": "Enabled"}})
    created = await bmc.post(f"{V1}/Managers/iDRAC.Embedded.1/Jobs",
                             json={"TargetSettingsURI": f"{SYS}/Bios/Settings"})
    jid = created.headers["Location"].rsplit("/", 1)[-1]
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(1000)
    job = (await bmc.get(f"{V1}/Managers/iDRAC.Embedded.1/Oem/Dell/Jobs/{jid}")).json()
    assert job["JobState"] == "RebootFailed" and "POST" in job["Message"]
    assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["ProcCStates"] == "Disabled"
    assert fleet.bmcs[0].report()["bios_pending"] == {}


@pytest.mark.anyio
async def test_psu_failed(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "psu_failed", psu=2)
    psus = (await bmc.get(f"{CHA}/Power")).json()["PowerSupplies"]
    assert [p["Status"]["Health"] for p in psus].count("Critical") == 1
    assert psus[1]["Status"]["Health"] == "Critical"
    modern = (await bmc.get(f"{CHA}/PowerSubsystem/PowerSupplies/PSU.Slot.2")).json()
    assert modern["Status"]["Health"] == "Critical"
    metrics = (await bmc.get(modern["Metrics"]["@odata.id"])).json()
    assert metrics["OutputPowerWatts"]["Reading"] == 0
    healthy = (await bmc.get(f"{CHA}/PowerSubsystem/PowerSupplies/PSU.Slot.1/Metrics")).json()
    assert healthy["OutputPowerWatts"]["Reading"] > 0
    assert "Power supply 2 failed." in await sel_messages(bmc)
    fleet.clear_faults()
    assert (await bmc.get(f"{CHA}/Power")).json()["PowerSupplies"][1]["Status"]["Health"] == "OK"


@pytest.mark.anyio
async def test_fan_failed(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "fan_failed", fan=3)
    fans = (await bmc.get(f"{CHA}/Thermal")).json()["Fans"]
    assert fans[2]["Reading"] == 0 and fans[2]["Status"]["Health"] == "Critical"
    modern = (await bmc.get(f"{CHA}/ThermalSubsystem/Fans/Fan.Embedded.3")).json()
    assert modern["Status"]["Health"] == "Critical"
    sensor = (await bmc.get(f"{CHA}/Sensors/Fan.Embedded.3")).json()
    assert sensor["Reading"] == 0


@pytest.mark.anyio
async def test_inlet_temp_high(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "inlet_temp_high", celsius=49)
    temps = (await bmc.get(f"{CHA}/Thermal")).json()["Temperatures"]
    inlet = next(t for t in temps if t["MemberId"] == "SystemBoardInletTemp")
    assert inlet["ReadingCelsius"] == 49 and inlet["Status"]["Health"] == "Critical"
    env = (await bmc.get(f"{CHA}/EnvironmentMetrics")).json()
    assert env["TemperatureCelsius"]["Reading"] == 49


@pytest.mark.anyio
async def test_power_over_cap(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "power_over_cap", excess_w=500)
    control = (await bmc.get(f"{CHA}/Power")).json()["PowerControl"][0]
    assert control["PowerConsumedWatts"] > control["PowerLimit"]["LimitInWatts"]
    assert control["Status"]["Health"] == "Warning"


@pytest.mark.anyio
async def test_gpu_missing(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "gpu_missing", gpu=5)
    members = (await bmc.get(f"{SYS}/Processors")).json()["Members"]
    gpus = [m["@odata.id"] for m in members if "Video" in m["@odata.id"]]
    assert len(gpus) == 7 and not any(g.endswith("Video.Slot.6-1") for g in gpus)
    assert (await bmc.get(SYS)).json()["Status"]["Health"] == "Critical"
    assert [g["index"] for g in fleet.bmcs[0].hw.nvml()] == [0, 1, 2, 3, 4, 6, 7]


@pytest.mark.anyio
async def test_xid_is_an_sel_entry_and_on_the_gpu(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    add(fleet, "xid", code=79, gpu=3)
    assert "GPU 3 reported NVIDIA Xid 79." in await sel_messages(bmc)
    gpu3 = (await bmc.get(f"{SYS}/Processors/Video.Slot.4-1")).json()
    assert gpu3["Status"]["Health"] == "Critical"
    assert fleet.bmcs[0].hw.nvml()[3]["xid_events"] == [{"code": 79}]
    assert fleet.bmcs[0].hw.nvml()[2]["xid_events"] == []


NODE_CHECKS = {
    "ecc_uncorrectable": (
        {"gpu": 2, "count": 3},
        lambda hw: hw.nvml()[2]["ecc"]["volatile"]["uncorrected"] == 3,
    ),
    "row_remap_pending": ({"gpu": 1}, lambda hw: hw.nvml()[1]["remapped_rows"]["pending"] is True),
    "pcie_downtrained": (
        {"gpu": 0, "width": 8},
        lambda hw: hw.nvml()[0]["pcie"]["width"] == 8 and hw.nvml()[0]["pcie"]["width_max"] == 16,
    ),
    "nvlink_down": (
        {"gpu": 4, "link": 7},
        lambda hw: (
            [ln["active"] for ln in hw.nvml()[4]["nvlink"]].count(False) == 1
            and not hw.nvml()[4]["nvlink"][7]["active"]
        ),
    ),
    "ib_port_down": (
        {"port": 6},
        lambda hw: hw.ib_ports()[6]["state"] == "1: DOWN" and hw.ib_ports()[6]["phys_state"] == "3: Disabled",
    ),
    "ib_degraded": (
        {"port": 2, "rate_gbps": 200},
        lambda hw: hw.ib_ports()[2]["rate"].startswith("200") and hw.ib_ports()[2]["counters"]["symbol_error"] > 0,
    ),
    "ib_slow": (
        {"factor": 0.5},
        lambda hw: (
            node_peak_gbs(hw, 8) == pytest.approx(185.0) and all(p["rate"].startswith("400") for p in hw.ib_ports())
        ),
    ),
    "thermal_throttle": ({"gpu": 7}, lambda hw: "HwThermalSlowdown" in hw.nvml()[7]["clocks_event_reasons"]),
    "gpu_slow": ({"gpu": 3, "factor": 0.33}, lambda hw: hw.nvml()[3]["perf_factor"] == pytest.approx(0.33)),
    "kernel_log_refused": (
        {"sudo": True},
        lambda hw: hw.kernel_log_readers() == {"journalctl": False, "sudo": True, "dmesg": False},
    ),
    "fabric_manager_failed": (
        {},
        lambda hw: (
            hw.services() == {"nvidia-fabricmanager": "failed"}
            and {g["fabric"]["state"] for g in hw.nvml()} == {"in_progress"}
        ),
    ),
}


@pytest.mark.parametrize("kind", sorted(NODE_CHECKS))
def test_node_side_faults_show_in_the_hardware_model(fleet: SimulatedFleet, kind: str) -> None:
    params, check = NODE_CHECKS[kind]
    hw = fleet.bmcs[0].hw
    healthy = (hw.nvml(), hw.ib_ports())
    assert not check(hw)
    add(fleet, kind, **params)
    assert check(hw)
    assert not check(fleet.bmcs[1].hw)  # only the faulted node
    fleet.clear_faults("gpu0001", kind)
    assert (hw.nvml(), hw.ib_ports()) == healthy


def test_every_kind_is_covered_by_a_test() -> None:
    tested_here = set(NODE_CHECKS) | {
        "bmc_slow",
        "bmc_503",
        "bmc_unreachable",
        "session_limit",
        "firmware_update_fails",
        "firmware_update_hangs",
        "firmware_completes_with_errors",
        "reboot_fails",
        "activation_fails",  # tests/provision/test_provision_faults.py: still behind after the AC cycle
        "psu_failed",
        "fan_failed",
        "inlet_temp_high",
        "power_over_cap",
        "gpu_missing",
        "xid",
        "os_install_hangs",  # tests/provision/test_boot_virtual_media_lab.py, with media_eject_fails
        "media_eject_fails",
    }
    # The faults that develop over simulated days are tested in tests/check/test_developing_faults.py.
    assert tested_here | set(DEVELOPING_KINDS) == set(FAULT_KINDS)


def test_fault_validation_errors_are_one_line(fleet: SimulatedFleet) -> None:
    with pytest.raises(FaultError, match="unknown fault kind 'melted'"):
        make_fault("gpu0001", "melted")
    with pytest.raises(FaultError, match="unknown node 'gpu9999'"):
        make_fault("gpu9999", "xid", {}, fleet.names)
    with pytest.raises(FaultError, match="unknown parameter"):
        make_fault("gpu0001", "xid", {"colour": "red"})
    with pytest.raises(FaultError, match="must be an integer"):
        make_fault("gpu0001", "xid", {"code": "seventy-nine"})
    with pytest.raises(FaultError, match="KEY=VALUE"):
        parse_param_args(["code79"])
    assert make_fault("gpu0001", "xid", parse_param_args(["code=48"])).params == {"code": 48, "gpu": 0}


def test_fault_file(tmp_path: Path, fleet: SimulatedFleet) -> None:
    good = tmp_path / "faults.yaml"
    good.write_text(
        "faults:\n  - {node: gpu0002, kind: xid, params: {code: 79, gpu: 3}}\n"
        "  - {node: gpu0004, kind: psu_failed, params: {psu: 1}}\n"
    )
    faults = load_fault_file(good, fleet.names)
    assert [(f.node, f.kind, f.params) for f in faults] == [
        ("gpu0002", "xid", {"code": 79, "gpu": 3}),
        ("gpu0004", "psu_failed", {"psu": 1}),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {node: gpu0002, kind: xid}\n  - {node: gpu0003, kind: fire}\n")
    with pytest.raises(FaultError, match=r"faults\[1\]: unknown fault kind 'fire'"):
        load_fault_file(bad, fleet.names)
    broken = tmp_path / "broken.yaml"
    broken.write_text("faults: [\n")
    with pytest.raises(FaultError, match="not valid YAML"):
        load_fault_file(broken)
    with pytest.raises(FaultError, match="cannot read"):
        load_fault_file(tmp_path / "absent.yaml")


def test_the_example_fault_file_documents_every_kind() -> None:
    import clusterctl.sim

    example = Path(clusterctl.sim.__file__).with_name("faults.example.yaml")
    faults = load_fault_file(example, {f"gpu{i:04d}" for i in range(1, 17)})
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    text = example.read_text()
    for kind in FAULT_KINDS.values():  # every parameter is named where its kind is shown
        line = next(ln for ln in text.splitlines() if f"kind: {kind.name}" in ln)
        assert all(f"{param}:" in line for param in kind.params), kind.name
