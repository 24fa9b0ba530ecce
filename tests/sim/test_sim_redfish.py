"""The simulated iDRAC through its ASGI app: auth, sessions, headers, BIOS, firmware, power, paging."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from clusterctl.sim.bmc import MAX_SESSIONS
from clusterctl.sim.fleet import SimulatedFleet
from clusterctl.sim.inventory import LAB_OS_IMAGE

pytestmark = pytest.mark.anyio

V1 = "/redfish/v1"
SYS = f"{V1}/Systems/System.Embedded.1"
MGR = f"{V1}/Managers/iDRAC.Embedded.1"
SETTINGS = f"{SYS}/Bios/Settings"
PW = "lab-test-pw"


async def test_service_root_is_public_but_resources_need_auth(anon: httpx.AsyncClient) -> None:
    root = await anon.get(f"{V1}/")
    assert root.status_code == 200
    assert root.headers["OData-Version"] == "4.0"
    assert root.json()["Links"]["Sessions"]["@odata.id"] == f"{V1}/SessionService/Sessions"
    denied = await anon.get(SYS)
    assert denied.status_code == 401
    assert denied.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("NoValidSession")
    wrong = await anon.get(SYS, auth=("root", "nope"))
    assert wrong.status_code == 401
    ok = await anon.get(SYS, auth=("root", PW))
    assert ok.status_code == 200
    assert ok.json()["Model"] == "PowerEdge XE9680"


async def test_each_bmc_is_its_own_server(fleet: SimulatedFleet, anon: httpx.AsyncClient) -> None:
    other = await anon.get("https://127.1.0.3:8443" + SYS, auth=("root", PW))
    assert other.json()["HostName"] == "gpu0003"
    nowhere = await anon.get("https://127.1.0.99:8443" + SYS, auth=("root", PW))
    assert nowhere.status_code == 404


async def test_session_login_token_logout(anon: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    created = await anon.post(f"{V1}/SessionService/Sessions", json={"UserName": "root", "Password": PW})
    assert created.status_code == 201
    token, location = created.headers["X-Auth-Token"], created.headers["Location"]
    assert created.json()["Password"] is None
    assert (await anon.get(SYS, headers={"X-Auth-Token": token})).status_code == 200
    assert (await anon.delete(location, headers={"X-Auth-Token": token})).status_code == 200  # as iDRAC
    assert (await anon.get(SYS, headers={"X-Auth-Token": token})).status_code == 401
    bad = await anon.post(f"{V1}/SessionService/Sessions", json={"UserName": "root", "Password": "x"})
    assert bad.status_code == 401
    assert fleet.bmcs[0].journal.sessions_created == 1


async def test_session_limit_answers_503_like_idrac(anon: httpx.AsyncClient) -> None:
    login = {"UserName": "root", "Password": PW}
    for _ in range(MAX_SESSIONS):
        assert (await anon.post(f"{V1}/SessionService/Sessions", json=login)).status_code == 201
    over = await anon.post(f"{V1}/SessionService/Sessions", json=login)
    assert over.status_code == 503
    assert over.headers["Retry-After"]
    assert over.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("RAC0218")
    # another BMC has its own table
    elsewhere = await anon.post("https://127.1.0.2:8443" + f"{V1}/SessionService/Sessions", json=login)
    assert elsewhere.status_code == 201


async def test_headers_allow_etag_and_405(bmc: httpx.AsyncClient) -> None:
    got = await bmc.get(SYS)
    assert "PATCH" in got.headers["Allow"] and "GET" in got.headers["Allow"]
    assert "describedby" in got.headers["Link"]
    tag = got.headers["ETag"]
    assert (await bmc.get(SYS, headers={"If-None-Match": tag})).status_code == 304
    refused = await bmc.delete(SYS)
    assert refused.status_code == 405
    assert "DELETE" not in refused.headers["Allow"]
    assert (await bmc.get(f"{V1}/NoSuchThing")).status_code == 404
    assert (await bmc.get(f"{SYS}?$expand=*($levels=3)")).status_code == 501


async def test_bios_if_match_mismatch_is_412(bmc: httpx.AsyncClient) -> None:
    current = await bmc.get(SETTINGS)
    stale = await bmc.patch(
        SETTINGS, json={"Attributes": {"LogicalProc": "Disabled"}}, headers={"If-Match": '"not-the-etag"'}
    )
    assert stale.status_code == 412
    assert (await bmc.get(SETTINGS)).json()["Attributes"] == {}
    fresh = await bmc.patch(
        SETTINGS,
        json={"Attributes": {"LogicalProc": "Disabled"}},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert fresh.status_code == 200
    unknown = await bmc.patch(SETTINGS, json={"Attributes": {"NoSuchAttr": 1}})
    assert unknown.status_code == 400
    bad_value = await bmc.patch(SETTINGS, json={"Attributes": {"SysProfile": "Turbo"}})
    assert bad_value.status_code == 400


async def test_bios_pending_until_job_and_reboot(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    clock = fleet.clock
    await bmc.patch(SETTINGS, json={"Attributes": {"SysProfile": "Custom", "ProcCStates": "Enabled"}})
    assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["SysProfile"] == "PerfOptimized"
    # a reboot without a configuration job leaves settings pending, as on iDRAC
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    clock.advance(600)
    assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["SysProfile"] == "PerfOptimized"
    job = await bmc.post(f"{MGR}/Jobs", json={"TargetSettingsURI": SETTINGS})
    assert job.status_code == 200
    job_uri = job.headers["Location"]
    assert (await bmc.get(job_uri)).json()["JobState"] == "Pending"
    assert (
        await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "GracefulRestart"})
    ).status_code == 204
    assert (await bmc.get(SYS)).json()["PowerState"] == "PoweringOn"
    clock.advance(600)
    assert (await bmc.get(job_uri)).json()["JobState"] == "Completed"
    attrs = (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]
    assert attrs["SysProfile"] == "Custom" and attrs["ProcCStates"] == "Enabled"
    assert (await bmc.get(SETTINGS)).json()["Attributes"] == {}
    report = fleet.bmcs[0].report()
    assert report["bios_changes"] == [{"SysProfile": "Custom", "ProcCStates": "Enabled"}]
    assert report["resets"] == {"ForceRestart": 1, "GracefulRestart": 1}
    assert report["power_state"] == "On"


async def test_simple_update_task_completes_in_simulated_time(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    clock = fleet.clock
    started = await bmc.post(
        f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
        json={"ImageURI": "http://repo.lab/fw/BIOS_1.6.2.EXE", "@Redfish.OperationApplyTime": "OnReset"},
    )
    assert started.status_code == 202
    task_uri = started.headers["Location"]
    assert task_uri.startswith(f"{V1}/TaskService/Tasks/JID_")
    clock.advance(60)
    task = (await bmc.get(task_uri)).json()
    assert task["TaskState"] == "Running" and task["Oem"]["Dell"]["JobState"] == "Scheduled"
    jid = task_uri.rsplit("/", 1)[1]
    assert (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{jid}")).json()["JobState"] == "Scheduled"
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    clock.advance(60)
    assert (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{jid}")).json()["JobState"] == "Running"
    assert (await bmc.get(SYS)).json()["BiosVersion"] == "2.2.8"
    clock.advance(900)
    assert (await bmc.get(task_uri)).json()["TaskState"] == "Completed"
    assert (await bmc.get(SYS)).json()["BiosVersion"] == "1.6.2"
    inventory = (await bmc.get(f"{V1}/UpdateService/FirmwareInventory")).json()
    ids = [m["@odata.id"].rsplit("/", 1)[1] for m in inventory["Members"]]
    assert "Installed-159-1.6.2" in ids and "Previous-159-2.2.8" in ids
    report = fleet.bmcs[0].report()
    assert report["firmware_applied"] == {"bios": 1}
    assert report["firmware"]["bios"] == "1.6.2"


async def test_idrac_update_applies_without_reboot_and_drops_sessions(bmc: httpx.AsyncClient,
                                                                      fleet: SimulatedFleet) -> None:
    login = await bmc.post(f"{V1}/SessionService/Sessions", json={"UserName": "root", "Password": PW})
    token = login.headers["X-Auth-Token"]
    started = await bmc.post(
        f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
        json={"ImageURI": "https://repo.lab/iDRAC-7.10.30.00.bin"},
    )
    fleet.clock.advance(20 + 240 + 121)  # download, apply, iDRAC reset
    assert (await bmc.get(started.headers["Location"])).json()["TaskState"] == "Completed"
    assert (await bmc.get(MGR)).json()["FirmwareVersion"] == "7.10.30.00"
    assert (await bmc.get(SYS, headers={"X-Auth-Token": token}, auth=None)).status_code == 401
    assert fleet.bmcs[0].report()["resets"] == {}


async def test_unknown_image_fails_the_task(bmc: httpx.AsyncClient) -> None:
    started = await bmc.post(
        f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
        json={"ImageURI": "http://repo.lab/fw/mystery.zip"},
    )
    task = (await bmc.get(started.headers["Location"])).json()
    assert task["TaskState"] == "Exception"
    missing = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate", json={})
    assert missing.status_code == 400


async def test_power_state_machine(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    reset = f"{SYS}/Actions/ComputerSystem.Reset"
    assert (await bmc.post(reset, json={"ResetType": "On"})).status_code == 409
    await bmc.post(reset, json={"ResetType": "GracefulShutdown"})
    assert (await bmc.get(SYS)).json()["PowerState"] == "PoweringOff"
    fleet.clock.advance(30)
    assert (await bmc.get(SYS)).json()["PowerState"] == "Off"
    watts_off = (await bmc.get(f"{V1}/Chassis/System.Embedded.1/Power")).json()["PowerControl"][0]
    assert watts_off["PowerConsumedWatts"] < 100
    assert (await bmc.post(reset, json={"ResetType": "ForceOff"})).status_code == 409
    await bmc.post(reset, json={"ResetType": "On"})
    fleet.clock.advance(300)
    assert (await bmc.get(SYS)).json()["PowerState"] == "On"
    assert (await bmc.post(reset, json={"ResetType": "Sideways"})).status_code == 400
    lc = await bmc.post(f"{MGR}/Oem/Dell/DellLCService/Actions/DellLCService.GetRemoteServicesAPIStatus", json={})
    assert lc.json()["LCStatus"] == "Ready" and lc.json()["ServerStatus"] == "OutOfPOST"


async def test_power_follows_load(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    uri = f"{V1}/Chassis/System.Embedded.1/EnvironmentMetrics"
    idle = (await bmc.get(uri)).json()["PowerWatts"]["Reading"]
    fleet.bmcs[0].hw.load = 1.0
    busy = (await bmc.get(uri)).json()["PowerWatts"]["Reading"]
    assert busy > idle + 4000


async def test_boot_override_and_virtual_media(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    patched = await bmc.patch(
        SYS, json={"Boot": {"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once"}}
    )
    assert patched.status_code == 200
    assert patched.json()["Boot"]["BootSourceOverrideTarget"] == "Cd"
    assert (await bmc.patch(SYS, json={"Boot": {"BootSourceOverrideTarget": "Moon"}})).status_code == 400
    assert (await bmc.patch(SYS, json={"PowerState": "Off"})).status_code == 400
    # An image the BMC cannot reach is refused on insert, as iDRAC's Remote File Share connects at once.
    wrong = await bmc.post(f"{MGR}/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia",
                           json={"Image": "http://repo.lab/missing.iso"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(".RAC0720")
    assert (await bmc.get(f"{MGR}/VirtualMedia/CD")).json()["Inserted"] is False
    insert = await bmc.post(f"{MGR}/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia", json={"Image": LAB_OS_IMAGE})
    assert insert.status_code == 204
    assert (await bmc.get(f"{MGR}/VirtualMedia/CD")).json()["Inserted"] is True
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    assert (await bmc.get(SYS)).json()["Boot"]["BootSourceOverrideEnabled"] == "Disabled"
    report = fleet.bmcs[0].report()
    assert report["virtual_media"] == [LAB_OS_IMAGE]
    assert {"target": "Cd", "consumed": "Once"} in report["boot_overrides"]


async def test_sel_pages_with_next_link(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    for n in range(70):
        fleet.bmcs[0].add_sel(f"event {n}", "TST0001", "OK")
    uri = f"{MGR}/LogServices/Sel/Entries"
    seen: list[str] = []
    for _ in range(10):  # bounded walk
        page = (await bmc.get(uri)).json()
        seen += [m["@odata.id"] for m in page["Members"]]
        if "Members@odata.nextLink" not in page:
            break
        uri = page["Members@odata.nextLink"]
    assert len(seen) == len(set(seen)) == page["Members@odata.count"] == 72
    entry = (await bmc.get(seen[0])).json()
    assert entry["Message"] == "event 69"  # newest first
    assert (await bmc.post(f"{MGR}/LogServices/Sel/Actions/LogService.ClearLog", json={})).status_code == 204
    assert (await bmc.get(f"{MGR}/LogServices/Sel/Entries")).json()["Members@odata.count"] == 1


async def test_malformed_json_is_400(bmc: httpx.AsyncClient) -> None:
    response = await bmc.patch(SETTINGS, content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("MalformedJSON")


async def test_multipart_push_of_a_lab_image(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    service = (await bmc.get(f"{V1}/UpdateService")).json()
    image = b"clusterctl lab firmware image\ncomponent=ConnectX-7\nversion=28.41.1000\n"
    files = {
        "UpdateParameters": (None, '{"@Redfish.OperationApplyTime": "OnReset"}', "application/json"),
        "UpdateFile": ("ConnectX-7-28.41.1000.bin", image, "application/octet-stream"),
    }
    pushed = await bmc.post(service["MultipartHttpPushUri"], files=files)
    assert pushed.status_code == 202
    fleet.clock.advance(10)
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(1000)
    assert (await bmc.get(pushed.headers["Location"])).json()["TaskState"] == "Completed"
    report = fleet.bmcs[0].report()
    assert report["firmware"]["nic"] == "28.41.1000" and report["firmware_applied"] == {"nic": 1}
    no_file = await bmc.post(service["MultipartHttpPushUri"], files={"UpdateParameters": (None, "{}")})
    assert no_file.status_code == 400


async def test_reset_during_download_leaves_the_job_for_the_next_reset(bmc: httpx.AsyncClient,
                                                                       fleet: SimulatedFleet) -> None:
    started = await bmc.post(
        f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate", json={"ImageURI": "http://repo.lab/fw/NIC-28.41.1000.bin"}
    )
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(1000)
    assert (await bmc.get(started.headers["Location"])).json()["Oem"]["Dell"]["JobState"] == "Scheduled"
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(1000)
    assert (await bmc.get(started.headers["Location"])).json()["TaskState"] == "Completed"
    assert fleet.bmcs[0].firmware["nic"] == "28.41.1000"


async def test_immediate_apply_reboots_the_server_itself(bmc: httpx.AsyncClient, fleet: SimulatedFleet) -> None:
    started = await bmc.post(
        f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
        json={"ImageURI": "http://repo.lab/fw/BIOS-2.3.5.bin", "@Redfish.OperationApplyTime": "Immediate"},
    )
    task = (await bmc.get(started.headers["Location"])).json()
    monitor = await bmc.get(task["TaskMonitor"])
    assert monitor.status_code == 202  # still running: the monitor says so
    fleet.clock.advance(25)
    assert (await bmc.get(SYS)).json()["PowerState"] == "PoweringOn"
    fleet.clock.advance(1000)
    assert (await bmc.get(task["TaskMonitor"])).status_code == 200
    report = fleet.bmcs[0].report()
    assert report["firmware"]["bios"] == "2.3.5" and report["power_state"] == "On"
    assert report["resets"] == {"ImmediateApply": 1}


async def test_idrac_reset_drops_sessions_and_answers_again_later(anon: httpx.AsyncClient,
                                                                  fleet: SimulatedFleet) -> None:
    login = await anon.post(f"{V1}/SessionService/Sessions", json={"UserName": "root", "Password": PW})
    token = {"X-Auth-Token": login.headers["X-Auth-Token"]}
    assert (await anon.post(f"{MGR}/Actions/Manager.Reset", json={}, headers=token)).status_code == 204
    with pytest.raises(TimeoutError):  # the iDRAC is rebooting: no answer
        await asyncio.wait_for(anon.get(SYS, headers=token), timeout=0.3)
    fleet.clock.advance(121)
    assert (await anon.get(SYS, headers=token)).status_code == 401  # its sessions are gone
    assert (await anon.get(SYS, auth=("root", PW))).status_code == 200
