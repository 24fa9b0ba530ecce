"""Recorded iDRAC9 payloads: model parsing, telemetry normalisation (new model, legacy, mixed),
BIOS staging, firmware paging, logs, and the Dell OEM module (LC status, jobs, BIOS job, SCP)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from support.fakebmc import FakeBMC, Req, Resp, fixture

from clusterctl.errors import BMCRequestFailed, TaskFailed
from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy
from clusterctl.redfish.messages import describe
from clusterctl.redfish.oem import idrac as dell
from clusterctl.redfish.resources.bios import attribute_registry, pending, read_bios, stage_attributes
from clusterctl.redfish.resources.chassis import Chassis, Power, Thermal, list_chassis
from clusterctl.redfish.resources.logs import LogService, entries
from clusterctl.redfish.resources.systems import ComputerSystem, get_system, pick_reset_type, reset
from clusterctl.redfish.resources.telemetry import telemetry
from clusterctl.redfish.resources.update import firmware_inventory

FAST = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=1, jitter=0, max_total=5)
CHASSIS = "/redfish/v1/Chassis/System.Embedded.1"


def with_client(bmc: FakeBMC, fn: Any) -> Any:
    async def go() -> Any:
        target = BMCTarget(
            name="r07u12",
            base_url="https://idrac.test",
            username="admin",
            password="s3cret-pw",
            vendor="idrac",
        )
        async with RedfishClient(target, transport=httpx.ASGITransport(app=bmc), retry=FAST) as client:
            return await fn(client)

    return asyncio.run(go())


# -- parsing -------------------------------------------------------------------------------


def test_system_summary_and_reset_types_from_a_recorded_xe9680() -> None:
    system = ComputerSystem.model_validate(fixture("idrac9/system.json"))
    assert system.summary() == {
        "id": "System.Embedded.1",
        "manufacturer": "Dell Inc.",
        "model": "PowerEdge XE9680",
        "serial": "CNFCP0041P00AB",
        "power_state": "On",
        "health": "OK",
        "bios_version": "2.19.1",
        "cpus": 2,
        "cpu_model": "Intel(R) Xeon(R) Platinum 8480+",
        "memory_gib": 2048,
        "boot_override": None,
        "boot_override_enabled": "Disabled",
        "boot_mode": "UEFI",
    }
    assert pick_reset_type(system, "cycle") == "PowerCycle"
    assert pick_reset_type(system, "on") == "On"
    assert "UefiHttp" in system.boot.allowed_targets


def test_models_tolerate_missing_and_unknown_fields() -> None:
    system = ComputerSystem.model_validate({"Id": "x", "SomethingNew": {"a": 1}})
    assert system.summary()["model"] is None and system.reset_types() == []
    assert pick_reset_type(system, "off") == "ForceOff"  # no AllowableValues: all are allowed
    assert Power.model_validate({}).power_supplies == []


def test_legacy_power_and_thermal_parse() -> None:
    power = Power.model_validate(fixture("idrac9/power.json"))
    thermal = Thermal.model_validate(fixture("idrac9/thermal.json"))
    assert power.power_control[0].consumed_watts == 5240 and power.power_control[0].limit.limit_watts == 12000
    assert [p.status.health for p in power.power_supplies] == ["OK", "Critical", "OK"]
    assert [f.reading for f in thermal.fans] == [9120, 480]


def test_extended_info_text_keeps_ids_and_resolutions() -> None:
    text = describe(fixture("idrac9/error_extended_info.json"))
    assert text.startswith("Base.1.12.PropertyValueNotInList: The value 'Turbo' for the property ProcTurboMode")
    assert "(Choose a value from the enumeration list" in text
    assert "; IDRAC.2.9.SYS426: Unable to complete" in text


# -- telemetry -----------------------------------------------------------------------------


def test_telemetry_prefers_the_new_power_and_thermal_model(idrac: FakeBMC) -> None:
    async def read(client: RedfishClient) -> Any:
        return await telemetry(client, (await list_chassis(client))[0])

    t = with_client(idrac, read)
    assert t.source == {"power": "subsystem", "thermal": "subsystem"}
    assert [(p.name, p.health, p.input_watts) for p in t.psus] == [
        ("PS1 Status", "OK", 884),
        ("PS2 Status", "Critical", 0),
    ]
    assert [(f.name, f.rpm, f.percent) for f in t.fans] == [("System Board Fan1A", 9120, 61)]
    assert (t.inlet_c, t.exhaust_c) == (24, 42)
    assert (t.power_watts, t.power_limit_watts) == (5250, 12000)
    assert idrac.requests("GET", f"{CHASSIS}/Power") == []  # the legacy resource was not needed


def test_telemetry_falls_back_to_legacy_power_and_thermal(idrac: FakeBMC) -> None:
    chassis = idrac.resources[CHASSIS]
    for key in ("PowerSubsystem", "ThermalSubsystem", "EnvironmentMetrics", "Sensors"):
        chassis.pop(key)

    t = with_client(idrac, lambda c: _first_chassis_telemetry(c))
    assert t.source == {"power": "legacy", "thermal": "legacy"}
    assert [p.input_watts for p in t.psus] == [880, 0, 905]
    assert [(f.rpm, f.health) for f in t.fans] == [(9120, "OK"), (480, "Warning")]
    assert (t.inlet_c, t.exhaust_c) == (23, 41)  # from the sensor names: PhysicalContext is SystemBoard
    assert (t.power_watts, t.power_limit_watts) == (5240, 12000)


def test_telemetry_mixes_models_when_a_new_resource_is_advertised_but_broken(idrac: FakeBMC) -> None:
    idrac.on("GET", f"{CHASSIS}/PowerSubsystem", lambda req: Resp(501, None))
    idrac.resources.pop(f"{CHASSIS}/ThermalSubsystem/ThermalMetrics")
    idrac.resources[CHASSIS].pop("Sensors")

    t = with_client(idrac, lambda c: _first_chassis_telemetry(c))
    assert t.source == {"power": "legacy", "thermal": "mixed"}
    assert [f.name for f in t.fans] == ["System Board Fan1A"]  # fans from the new model
    assert t.inlet_c == 23  # temperatures from legacy Thermal
    assert t.power_watts == 5250  # EnvironmentMetrics still wins for the total


async def _first_chassis_telemetry(client: RedfishClient) -> Any:
    return await telemetry(client, Chassis.model_validate(await client.get(CHASSIS)))


# -- firmware, BIOS, logs, reset -------------------------------------------------------------


def test_firmware_inventory_follows_paging(idrac: FakeBMC) -> None:
    page2 = fixture("idrac9/firmware_inventory_page2.json")
    idrac.on(
        "GET",
        "/redfish/v1/UpdateService/FirmwareInventory",
        _paged(fixture("idrac9/firmware_inventory.json"), page2),
    )
    comps = with_client(idrac, firmware_inventory)
    assert [(c.name, c.version) for c in comps] == [
        ("Integrated Dell Remote Access Controller", "7.10.30.00"),
        ("BIOS", "2.19.1"),
        ("Mellanox ConnectX-7 Single Port VPI NDR OSFP Adapter", "22.39.10.02"),
    ]


def _paged(first: dict, second: dict) -> Any:
    """The fake routes by path only; the query string picks the page like a real BMC does."""
    calls = {"n": 0}

    def handler(req: Req) -> Resp:
        calls["n"] += 1
        return Resp(200, first if calls["n"] == 1 else second)

    return handler


def test_bios_stage_only_the_difference_with_if_match_then_see_it_pending(idrac: FakeBMC) -> None:
    async def go(client: RedfishClient) -> tuple[dict, dict, dict]:
        bios = await read_bios(client, await get_system(client))
        change = await stage_attributes(
            client, bios, {"ProcTurboMode": "Enabled", "LogicalProc": "Disabled"}, apply_time="OnReset"
        )
        again = await stage_attributes(client, bios, {"ProcTurboMode": "Enabled"})
        return change, again, await pending(client, bios)

    change, again, staged = with_client(idrac, go)
    assert change == {"LogicalProc": "Disabled"} and again == {}
    assert staged == {"LogicalProc": "Disabled"}
    (patch,) = idrac.requests("PATCH", "/redfish/v1/Systems/System.Embedded.1/Bios/Settings")
    assert patch.headers["if-match"] == 'W/"1"'
    assert patch.json == {
        "Attributes": {"LogicalProc": "Disabled"},
        "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"},
    }


def test_bios_unknown_attribute_and_unsupported_apply_time_are_refused(idrac: FakeBMC) -> None:
    async def typo(client: RedfishClient) -> None:
        await stage_attributes(client, await read_bios(client, await get_system(client)), {"ProcTurbo": "x"})

    async def when(client: RedfishClient) -> None:
        bios = await read_bios(client, await get_system(client))
        await stage_attributes(client, bios, {"LogicalProc": "Disabled"}, apply_time="Immediate")

    with pytest.raises(BMCRequestFailed, match="unknown BIOS attribute"):
        with_client(idrac, typo)
    with pytest.raises(BMCRequestFailed, match="apply time Immediate not supported"):
        with_client(idrac, when)
    assert idrac.requests("PATCH") == []


def test_attribute_registry_lookup(idrac: FakeBMC) -> None:
    idrac.add("/redfish/v1/Registries", {"Members": [{"@odata.id": "/redfish/v1/Registries/BiosAttributeRegistry"}]})
    idrac.add(
        "/redfish/v1/Registries/BiosAttributeRegistry",
        {
            "Id": "BiosAttributeRegistry.v1_0_3",
            "Location": [{"Language": "en", "Uri": "/redfish/v1/Systems/System.Embedded.1/Bios/BiosRegistry"}],
        },
    )
    idrac.add(
        "/redfish/v1/Systems/System.Embedded.1/Bios/BiosRegistry",
        {
            "RegistryEntries": {
                "Attributes": [
                    {
                        "AttributeName": "ProcTurboMode",
                        "Type": "Enumeration",
                        "ReadOnly": False,
                        "Value": [{"ValueName": "Enabled"}, {"ValueName": "Disabled"}],
                    }
                ]
            }
        },
    )

    async def go(client: RedfishClient) -> dict:
        return await attribute_registry(client, await read_bios(client, await get_system(client)))

    reg = with_client(idrac, go)
    assert [v["ValueName"] for v in reg["ProcTurboMode"]["Value"]] == ["Enabled", "Disabled"]


def test_sel_entries_are_paged_and_bounded(idrac: FakeBMC) -> None:
    service = LogService.model_validate(
        {
            "Id": "Sel",
            "Entries": {"@odata.id": "/redfish/v1/Managers/iDRAC.Embedded.1/LogServices/Sel/Entries"},
        }
    )
    got = with_client(idrac, lambda c: entries(c, service, limit=1))
    assert [(e.severity, e.message_id) for e in got] == [("Critical", "PSU0003")]


def test_reset_refuses_a_type_the_bmc_does_not_allow_and_posts_an_allowed_one(idrac: FakeBMC) -> None:
    target = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"
    idrac.on("POST", target, lambda req: Resp(204))

    async def go(client: RedfishClient) -> None:
        system = await get_system(client)
        with pytest.raises(BMCRequestFailed, match="ForceOn not allowed"):
            await reset(client, system, "ForceOn")
        await reset(client, system, "PowerCycle")

    with_client(idrac, go)
    assert [r.json for r in idrac.requests("POST", target)] == [{"ResetType": "PowerCycle"}]


# -- Dell OEM ------------------------------------------------------------------------------


def _lc(idrac_bmc: FakeBMC, answers: list[dict]) -> None:
    seq = iter(answers)
    last = {"body": answers[-1]}

    def handler(req: Req) -> Resp:
        last["body"] = next(seq, last["body"])
        return Resp(200, last["body"])

    idrac_bmc.on("POST", dell.LC_STATUS_URIS[0], handler)


def test_lc_status_ready_and_wait_until_ready(idrac: FakeBMC) -> None:
    ready = fixture("idrac9/lc_status.json")
    busy = dict(ready, LCStatus="NotInitialized", Status="NotReady")
    _lc(idrac, [busy, busy, ready])

    status = with_client(idrac, lambda c: dell.wait_lc_ready(c, deadline_s=5, poll=0.01))
    assert status.ready and status.server_status == "OutOfPOST"
    assert len(idrac.requests("POST", dell.LC_STATUS_URIS[0])) == 3


def test_lc_status_falls_back_to_the_pre_4x_uri(idrac: FakeBMC) -> None:
    idrac.on("POST", dell.LC_STATUS_URIS[1], lambda req: Resp(200, fixture("idrac9/lc_status.json")))
    assert with_client(idrac, dell.lc_status).ready


def test_bios_config_job_is_created_for_the_staged_settings(idrac: FakeBMC) -> None:
    _lc(idrac, [fixture("idrac9/lc_status.json")])
    job_uri = f"{dell.CREATE_JOB}/JID_878659984891"
    idrac.add(dell.JOBS, {"Members": []})
    idrac.on("POST", dell.CREATE_JOB, lambda req: Resp(200, None, {"Location": job_uri}))

    async def go(client: RedfishClient) -> tuple:
        bios = await read_bios(client, await get_system(client))
        change, jid, deleted = await dell.configure_bios(client, bios, {"SriovGlobalEnable": "Enabled"},
                                                         poll=0.01)
        assert deleted == []
        job = await dell.wait_job(client, jid, deadline_s=2, poll=0.01, stop_at="scheduled")
        return change, jid, job

    change, jid, job = with_client(idrac, go)
    assert change == {"SriovGlobalEnable": "Enabled"} and jid == "JID_878659984891"
    assert job.job_state == "Scheduled" and job.job_type == "BIOSConfiguration"
    (create,) = idrac.requests("POST", dell.CREATE_JOB)
    assert create.json == {"TargetSettingsURI": "/redfish/v1/Systems/System.Embedded.1/Bios/Settings"}


def test_stale_pending_bios_and_reboot_jobs_are_deleted_not_adopted(idrac: FakeBMC) -> None:
    """A pending BIOS job nobody recorded would apply its own attributes at the next reboot."""
    _lc(idrac, [fixture("idrac9/lc_status.json")])
    stale = fixture("idrac9/job.json")
    reboot = dict(stale, Id="JID_1", JobType="RebootNoForce", JobState="Scheduled")
    done = dict(stale, Id="JID_2", JobState="Completed")
    raid = dict(stale, Id="JID_3", JobType="RAIDConfiguration")
    members = [stale, reboot, done, raid]
    idrac.add(dell.JOBS, {"Members": [{"@odata.id": f"{dell.JOBS}/{j['Id']}"} for j in members]})
    for j in members:
        idrac.add(f"{dell.JOBS}/{j['Id']}", j)
    idrac.on("POST", dell.DELETE_JOB_QUEUE, lambda req: Resp(200, {}))
    idrac.on("POST", dell.CREATE_JOB, lambda req: Resp(200, None, {"Location": f"{dell.CREATE_JOB}/JID_9"}))

    async def go(client: RedfishClient) -> tuple:
        bios = await read_bios(client, await get_system(client))
        return await dell.configure_bios(client, bios, {"SriovGlobalEnable": "Enabled"}, poll=0.01)

    assert with_client(idrac, go) == ({"SriovGlobalEnable": "Enabled"}, "JID_9", ["JID_878659984891", "JID_1"])
    assert [r.json for r in idrac.requests("POST", dell.DELETE_JOB_QUEUE)] == [
        {"JobID": "JID_878659984891"}, {"JobID": "JID_1"}]
    # Deleted before the new settings are staged: a stale job must not run with ours.
    order = [r.path for r in idrac.log if r.method in ("POST", "PATCH") and "Sessions" not in r.path]
    assert order.index(dell.DELETE_JOB_QUEUE) < order.index("/redfish/v1/Systems/System.Embedded.1/Bios/Settings")


@pytest.mark.parametrize("state", ["Failed", "CompletedWithErrors", "RebootFailed"])
def test_a_dell_job_ending_badly_fails_the_wait(idrac: FakeBMC, state: str) -> None:
    idrac.add(f"{dell.JOBS}/JID_2", dict(fixture("idrac9/job.json"), JobState=state))
    with pytest.raises(TaskFailed, match=f"JID_2 {state}"):
        with_client(idrac, lambda c: dell.wait_job(c, "JID_2", deadline_s=2, poll=0.01))


def test_failed_dell_job_raises_with_its_message(idrac: FakeBMC) -> None:
    failed = dict(
        fixture("idrac9/job.json"),
        JobState="Failed",
        MessageId="SYS051",
        Message="Unable to apply the configuration changes.",
    )
    idrac.add(f"{dell.JOBS}/JID_1", failed)
    with pytest.raises(TaskFailed, match="JID_1 Failed: SYS051 Unable to apply"):
        with_client(idrac, lambda c: dell.wait_job(c, "JID_1", deadline_s=2, poll=0.01))


def test_scp_export_follows_the_task_to_the_profile(idrac: FakeBMC) -> None:
    export_uri = f"{dell.SCP_ACTIONS}/EID_674_Manager.ExportSystemConfiguration"
    task_uri = "/redfish/v1/TaskService/Tasks/JID_878682850779"
    idrac.on("POST", export_uri, lambda req: Resp(202, None, {"Location": task_uri}))
    profile = {"SystemConfiguration": {"Model": "PowerEdge XE9680", "Components": [{"FQDD": "BIOS.Setup.1-1"}]}}
    polls = iter([Resp(202, fixture("idrac9/task.json")), Resp(200, profile)])
    idrac.on("GET", task_uri, lambda req: next(polls))

    got = with_client(idrac, lambda c: dell.export_scp_and_wait(c, components=["BIOS", "IDRAC"], deadline_s=5,
                                                                poll=0.01))
    assert got == profile
    (post,) = idrac.requests("POST", export_uri)
    # The fixture's iDRAC runs 7.10: from 6.00 on, Target is a list.
    assert post.json == {"ExportFormat": "JSON", "ShareParameters": {"Target": ["BIOS", "IDRAC"]}}


@pytest.mark.parametrize(("firmware", "sent"), [("7.10.30.00", ["BIOS", "NIC"]), ("6.00.02.00", ["BIOS", "NIC"]),
                                                ("5.10.50.00", "BIOS,NIC"), (None, "BIOS,NIC")])
def test_scp_target_takes_the_form_of_the_idrac_firmware(idrac: FakeBMC, firmware: str | None, sent: object) -> None:
    idrac.resources[dell.MANAGER]["FirmwareVersion"] = firmware
    import_uri = f"{dell.SCP_ACTIONS}/EID_674_Manager.ImportSystemConfiguration"
    idrac.on("POST", import_uri, lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/JID_7"}))
    with_client(idrac, lambda c: dell.import_scp(c, "{}", components=["BIOS", "NIC"]))
    assert idrac.requests("POST", import_uri)[0].json["ShareParameters"] == {"Target": sent}


def test_scp_unknown_component_is_refused_before_any_request(idrac: FakeBMC) -> None:
    with pytest.raises(dell.SCPError, match="SCP components GPU: choose from ALL"):
        with_client(idrac, lambda c: dell.export_scp(c, components=["BIOS", "GPU"]))
    assert not idrac.requests("POST", f"{dell.SCP_ACTIONS}/EID_674_Manager.ExportSystemConfiguration")


def test_scp_import_sends_the_profile_and_returns_the_job(idrac: FakeBMC) -> None:
    import_uri = f"{dell.SCP_ACTIONS}/EID_674_Manager.ImportSystemConfiguration"
    idrac.on("POST", import_uri, lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/JID_42"}))
    profile = {"SystemConfiguration": {"Components": []}}

    jid = with_client(idrac, lambda c: dell.import_scp(c, profile, shutdown="NoReboot"))
    assert jid == "JID_42"
    body = idrac.requests("POST", import_uri)[0].json
    assert json.loads(body["ImportBuffer"]) == profile
    assert body["ShutdownType"] == "NoReboot" and body["ShareParameters"] == {"Target": ["ALL"]}


@pytest.mark.parametrize(("actions", "sent"), [
    ({"Oem": {"#DellOemChassis.ExtendedReset": {
        "target": f"{dell.CHASSIS}/Actions/Oem/DellOemChassis.ExtendedReset"}},
      "#Chassis.Reset": {"target": f"{dell.CHASSIS}/Actions/Chassis.Reset"}},
     (f"{dell.CHASSIS}/Actions/Oem/DellOemChassis.ExtendedReset",
      {"ResetType": "PowerCycle", "FinalPowerState": "On"})),
    ({"#Chassis.Reset": {"target": f"{dell.CHASSIS}/Actions/Chassis.Reset",
                         "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "PowerCycle"]}},
     (f"{dell.CHASSIS}/Actions/Chassis.Reset", {"ResetType": "PowerCycle"})),
])
def test_ac_power_cycle_prefers_dell_extended_reset(idrac: FakeBMC, actions: dict, sent: tuple) -> None:
    idrac.resources[dell.CHASSIS]["Actions"] = actions
    idrac.on("POST", sent[0], lambda req: Resp(204))
    with_client(idrac, dell.ac_power_cycle)
    posts = [(r.path, r.json) for r in idrac.requests("POST") if "Sessions" not in r.path]
    assert posts == [sent]


def test_an_idrac_without_any_ac_cycle_says_what_to_do(idrac: FakeBMC) -> None:
    idrac.resources[dell.CHASSIS]["Actions"] = {
        "#Chassis.Reset": {"target": f"{dell.CHASSIS}/Actions/Chassis.Reset",
                           "ResetType@Redfish.AllowableValues": ["On", "ForceOff"]}}
    with pytest.raises(BMCRequestFailed, match="offers no Chassis.Reset PowerCycle.*by hand"):
        with_client(idrac, dell.ac_power_cycle)
