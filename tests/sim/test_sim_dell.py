"""The lab's Dell OEM surface and iDRAC-specific behaviour through its ASGI app: the job queue, SCP
round trips, the virtual AC cycle, account slots and privileges, query parameters, error bodies."""

from __future__ import annotations

import json

import httpx
import pytest

from clusterctl.sim.faults import make_fault
from clusterctl.sim.fleet import SimulatedFleet

pytestmark = pytest.mark.anyio

V1 = "/redfish/v1"
SYS = f"{V1}/Systems/System.Embedded.1"
CHA = f"{V1}/Chassis/System.Embedded.1"
MGR = f"{V1}/Managers/iDRAC.Embedded.1"
OLD = f"{V1}/Dell/Managers/iDRAC.Embedded.1"
EXPORT = f"{MGR}/Actions/Oem/EID_674_Manager.ExportSystemConfiguration"
IMPORT = f"{MGR}/Actions/Oem/EID_674_Manager.ImportSystemConfiguration"
PW = "lab-test-pw"


def message_id(response: httpx.Response) -> str:
    return response.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"]


async def stage_bios_update(bmc: httpx.AsyncClient) -> str:
    started = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                             json={"ImageURI": "http://repo.lab/fw/BIOS_2.3.1.EXE", "TransferProtocol": "HTTP"})
    assert started.status_code == 202
    return started.headers["Location"].rsplit("/", 1)[-1]


@pytest.mark.parametrize("base", [f"{MGR}/Oem/Dell", OLD])
async def test_delete_job_queue_clears_jobs_and_pending_bios_at_both_prefixes(
    bmc: httpx.AsyncClient, fleet: SimulatedFleet, base: str
) -> None:
    jid = await stage_bios_update(bmc)
    assert (await bmc.patch(f"{SYS}/Bios/Settings", json={"Attributes": {"ProcCStates": "Enabled"}})).status_code == 200
    assert (await bmc.get(f"{MGR}/Jobs/{jid}")).status_code == 200
    cleared = await bmc.post(f"{base}/DellJobService/Actions/DellJobService.DeleteJobQueue",
                             json={"JobID": "JID_CLEARALL"})
    assert cleared.status_code == 200
    assert (await bmc.get(f"{MGR}/Jobs")).json()["Members"] == []
    assert (await bmc.get(f"{SYS}/Bios/Settings")).json()["Attributes"] == {}
    assert (await bmc.get(f"{base}/DellJobService")).status_code == 200
    missing = await bmc.post(f"{base}/DellJobService/Actions/DellJobService.DeleteJobQueue", json={})
    assert missing.status_code == 400 and message_id(missing).endswith("ActionParameterMissing")


async def test_lc_status_is_ready_at_both_prefixes(bmc: httpx.AsyncClient) -> None:
    for base in (f"{MGR}/Oem/Dell", OLD):
        answer = await bmc.post(f"{base}/DellLCService/Actions/DellLCService.GetRemoteServicesAPIStatus", json={})
        assert answer.status_code == 200 and answer.json()["LCStatus"] == "Ready"


async def test_scp_round_trip_changes_idrac_at_once_and_bios_at_the_reboot(
    bmc: httpx.AsyncClient, fleet: SimulatedFleet
) -> None:
    started = await bmc.post(EXPORT, json={"ExportFormat": "JSON", "ShareParameters": {"Target": ["BIOS", "IDRAC"]}})
    assert started.status_code == 202
    task = started.headers["Location"]
    assert (await bmc.get(task)).status_code == 202  # still exporting
    fleet.clock.advance(30)
    done = await bmc.get(task)
    assert done.status_code == 200
    profile = done.json()
    components = {c["FQDD"]: c for c in profile["SystemConfiguration"]["Components"]}
    assert set(components) == {"BIOS.Setup.1-1", "iDRAC.Embedded.1"}
    for attr in components["BIOS.Setup.1-1"]["Attributes"]:
        if attr["Name"] == "ProcCStates":
            attr["Value"] = "Enabled"
    for attr in components["iDRAC.Embedded.1"]["Attributes"]:
        if attr["Name"] == "IPMILan.1#Enable":
            attr["Value"] = "Enabled"
    imported = await bmc.post(IMPORT, json={"ImportBuffer": json.dumps(profile), "ShutdownType": "NoReboot",
                                            "ShareParameters": {"Target": "ALL"}})
    assert imported.status_code == 202
    jid = imported.headers["Location"].rsplit("/", 1)[-1]
    attrs = (await bmc.get(f"{MGR}/Attributes")).json()["Attributes"]
    assert attrs["IPMILan.1#Enable"] == "Enabled"
    assert (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{jid}")).json()["JobState"] == "Scheduled"
    assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["ProcCStates"] == "Disabled"
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(600)
    assert (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{jid}")).json()["JobState"] == "Completed"
    assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["ProcCStates"] == "Enabled"


async def test_scp_refuses_unknown_targets_and_remote_shares(bmc: httpx.AsyncClient) -> None:
    bad = await bmc.post(EXPORT, json={"ExportFormat": "JSON", "ShareParameters": {"Target": ["FAN"]}})
    assert bad.status_code == 400 and message_id(bad).endswith("ActionParameterValueNotInList")
    remote = await bmc.post(EXPORT, json={"ExportFormat": "JSON",
                                          "ShareParameters": {"Target": "ALL", "ShareType": "NFS"}})
    assert remote.status_code == 400


async def test_extended_reset_needs_the_server_off_then_cycles_it(bmc: httpx.AsyncClient,
                                                                 fleet: SimulatedFleet) -> None:
    target = f"{CHA}/Actions/Oem/DellOemChassis.ExtendedReset"
    on = await bmc.post(target, json={"ResetType": "PowerCycle", "FinalPowerState": "On"})
    assert on.status_code == 409
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"})
    cycled = await bmc.post(target, json={"ResetType": "PowerCycle", "FinalPowerState": "On"})
    assert cycled.status_code == 204
    fleet.clock.advance(600)
    assert (await bmc.get(SYS)).json()["PowerState"] == "On"
    assert fleet.bmcs[0].report()["ac_cycles"] == 1


async def test_power_on_a_server_that_is_on_is_a_409_with_psu501(bmc: httpx.AsyncClient) -> None:
    again = await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "On"})
    assert again.status_code == 409
    assert message_id(again) == "IDRAC.2.8.PSU501"
    assert again.json()["error"]["@Message.ExtendedInfo"][0]["Message"] == "Server is already powered ON."


async def test_simple_update_checks_the_transfer_protocol(bmc: httpx.AsyncClient) -> None:
    bad = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                         json={"ImageURI": "http://repo.lab/fw/BIOS_2.3.1.EXE", "TransferProtocol": "GOPHER"})
    assert bad.status_code == 400
    unknown_scheme = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                                    json={"ImageURI": "repo.lab/fw/BIOS_2.3.1.EXE"})
    assert unknown_scheme.status_code == 400 and message_id(unknown_scheme).endswith("ActionParameterMissing")


async def test_accounts_are_slots_added_enabled_and_removed_by_patch(anon: httpx.AsyncClient,
                                                                     bmc: httpx.AsyncClient) -> None:
    assert (await bmc.post(f"{V1}/AccountService/Accounts", json={"UserName": "ops"})).status_code == 405
    reserved = await bmc.patch(f"{V1}/AccountService/Accounts/1", json={"UserName": "ops"})
    assert reserved.status_code == 400
    added = await bmc.patch(f"{V1}/AccountService/Accounts/3",
                            json={"UserName": "ops", "Password": "ops-pw-123", "RoleId": "ReadOnly"})
    assert added.status_code == 200 and added.json()["Enabled"] is False
    assert (await anon.get(SYS, auth=("ops", "ops-pw-123"))).status_code == 401  # not enabled yet
    await bmc.patch(f"{V1}/AccountService/Accounts/3", json={"Enabled": True})
    assert (await anon.get(SYS, auth=("ops", "ops-pw-123"))).status_code == 200
    denied = await anon.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"},
                             auth=("ops", "ops-pw-123"))
    assert denied.status_code == 403 and message_id(denied).endswith("InsufficientPrivilege")
    await bmc.patch(f"{V1}/AccountService/Accounts/3", json={"Enabled": False})
    await bmc.patch(f"{V1}/AccountService/Accounts/3", json={"UserName": ""})
    assert (await bmc.get(f"{V1}/AccountService/Accounts/3")).json()["UserName"] == ""
    assert (await anon.get(SYS, auth=("ops", "ops-pw-123"))).status_code == 401


async def test_filter_and_select(bmc: httpx.AsyncClient) -> None:
    roles = await bmc.get(f"{V1}/AccountService/Roles", params={"$filter": "not (Id eq 'Operator')"})
    assert [m["@odata.id"].rsplit("/", 1)[-1] for m in roles.json()["Members"]] == ["Administrator", "ReadOnly"]
    either = await bmc.get(f"{V1}/AccountService/Roles",
                           params={"$filter": "Id eq 'Operator' or Id eq 'ReadOnly'"})
    assert either.json()["Members@odata.count"] == 2
    gpus = await bmc.get(f"{SYS}/Processors", params={"$filter": "ProcessorType eq 'GPU'"})
    assert gpus.json()["Members@odata.count"] == 8
    on_resource = await bmc.get(SYS, params={"$filter": "Id eq 'x'"})
    assert on_resource.status_code == 400
    malformed = await bmc.get(f"{V1}/AccountService/Roles", params={"$filter": "Id eq"})
    assert malformed.status_code == 400
    picked = (await bmc.get(SYS, params={"$select": "PowerState,Status/Health"})).json()
    assert set(picked) == {"@odata.context", "@odata.id", "@odata.type", "PowerState", "Status"}
    assert picked["Status"] == {"Health": "OK"}


async def test_session_delete_answers_200(anon: httpx.AsyncClient) -> None:
    created = await anon.post(f"{V1}/SessionService/Sessions", json={"UserName": "root", "Password": PW})
    gone = await anon.delete(created.headers["Location"], headers={"X-Auth-Token": created.headers["X-Auth-Token"]})
    assert gone.status_code == 200


async def test_bios_registry_has_idracs_shape(bmc: httpx.AsyncClient) -> None:
    registry = (await bmc.get(f"{SYS}/Bios/BiosRegistry")).json()
    entries = {a["AttributeName"]: a for a in registry["RegistryEntries"]["Attributes"]}
    assert entries["BootMode"]["Type"] == "Enumeration"
    assert [v["ValueName"] for v in entries["BootMode"]["Value"]] == ["Uefi", "Bios"]
    assert entries["AcPwrRcvryDelay"]["Type"] == "Integer"
    located = (await bmc.get(f"{V1}/Registries/BiosAttributeRegistry")).json()
    assert located["Location"][0]["Uri"] == f"{SYS}/Bios/BiosRegistry"


@pytest.mark.parametrize("cycle", ["ExtendedReset", "Chassis.Reset"])
async def test_hgx_firmware_waits_for_a_virtual_ac_cycle(bmc: httpx.AsyncClient, fleet: SimulatedFleet,
                                                         cycle: str) -> None:
    """HGX baseboard firmware is written at the reboot but runs only after an AC power cycle: Dell's
    ExtendedReset (server off first) or DMTF's Chassis.Reset PowerCycle (a full power removal as
    DMTF defines it); a plain reboot leaves the old version running."""
    started = await bmc.post(f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                             json={"ImageURI": "http://repo.lab/fw/HGX-H100_24.03.1.pldm", "TransferProtocol": "HTTP"})
    jid = started.headers["Location"].rsplit("/", 1)[-1]
    fleet.clock.advance(30)  # downloaded
    await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"})
    fleet.clock.advance(1000)
    task = (await bmc.get(f"{V1}/TaskService/Tasks/{jid}")).json()
    assert task["TaskState"] == "Running"
    assert any(m["MessageId"].endswith("AwaitToActivate") and "AC power cycle" in m["Message"]
               for m in task["Messages"])
    assert (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{jid}")).json()["JobState"] == "PendingActivation"
    assert (await bmc.get(f"{MGR}/Jobs/{jid}")).json()["JobState"] == "UserIntervention"
    assert fleet.bmcs[0].firmware["gpu"] == "23.10.2"  # rebooted, not cycled: still old
    if cycle == "ExtendedReset":
        on = await bmc.post(f"{CHA}/Actions/Oem/DellOemChassis.ExtendedReset",
                            json={"ResetType": "PowerCycle", "FinalPowerState": "On"})
        assert on.status_code == 409  # the server must be off first
        await bmc.post(f"{SYS}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"})
        cycled = await bmc.post(f"{CHA}/Actions/Oem/DellOemChassis.ExtendedReset",
                                json={"ResetType": "PowerCycle", "FinalPowerState": "On"})
    else:
        cycled = await bmc.post(f"{CHA}/Actions/Chassis.Reset", json={"ResetType": "PowerCycle"})
    assert cycled.status_code == 204
    fleet.clock.advance(1000)
    assert fleet.bmcs[0].firmware["gpu"] == "24.03.1"
    assert (await bmc.get(f"{V1}/TaskService/Tasks/{jid}")).json()["TaskState"] == "Completed"
    gpu = (await bmc.get(f"{SYS}/Processors/Video.Slot.1-1")).json()
    assert gpu["FirmwareVersion"] == "24.03.1"


@pytest.mark.parametrize("fault", [None, "reboot_fails"])
async def test_config_job_with_a_reboot_job_reboots_now(bmc: httpx.AsyncClient, fleet: SimulatedFleet,
                                                        fault: str | None) -> None:
    """POST Jobs with RebootJobType adds a Dell reboot job (RID_) that reboots the server at once."""
    if fault:
        fleet.add_fault(make_fault("gpu0001", fault, {}, fleet.names))
    await bmc.patch(f"{SYS}/Bios/Settings", json={"Attributes": {"ProcCStates": "Enabled"}})
    bad = await bmc.post(f"{MGR}/Jobs", json={"TargetSettingsURI": f"{SYS}/Bios/Settings", "RebootJobType": "Kick"})
    assert bad.status_code == 400
    created = await bmc.post(f"{MGR}/Jobs", json={"TargetSettingsURI": f"{SYS}/Bios/Settings",
                                                  "RebootJobType": "PowerCycle"})
    assert created.status_code == 200
    jid = created.headers["Location"].rsplit("/", 1)[-1]
    jobs = {m["@odata.id"].rsplit("/", 1)[-1] for m in (await bmc.get(f"{MGR}/Oem/Dell/Jobs")).json()["Members"]}
    rid = next(j for j in jobs if j.startswith("RID_"))
    fleet.clock.advance(1000)
    reboot = (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{rid}")).json()
    config = (await bmc.get(f"{MGR}/Oem/Dell/Jobs/{jid}")).json()
    if fault:
        assert reboot["JobState"] == config["JobState"] == "RebootFailed"
        assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["ProcCStates"] == "Disabled"
    else:
        assert reboot["JobState"] == "RebootCompleted" and reboot["JobType"] == "RebootPowerCycle"
        assert config["JobState"] == "Completed"
        assert (await bmc.get(f"{SYS}/Bios")).json()["Attributes"]["ProcCStates"] == "Enabled"
