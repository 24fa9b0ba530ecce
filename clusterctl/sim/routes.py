"""The URI table of a simulated iDRAC9: which resource or action answers each path and method."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from clusterctl.sim import actions as A
from clusterctl.sim import resources as R
from clusterctl.sim import routes_dell
from clusterctl.sim.bmc import ActionError
from clusterctl.sim.protocol import Handler, Request, Response, Route
from clusterctl.sim.query import FILTER, filter_members
from clusterctl.sim.resources import CHA, MGR, SYS, V1


def paged(req: Request, odata_type: str, name: str, members: list[str]) -> dict[str, Any]:
    def number(key: str) -> int | None:
        raw = req.query.get(key)
        if not raw:
            return None
        if not raw[0].isdigit():
            raise ActionError(
                400,
                "Base.1.12.QueryParameterValueTypeError",
                f"The value '{raw[0]}' for the query parameter {key} is of a different type "
                "than the parameter can accept.",
                args=[raw[0], key],
            )
        return int(raw[0])

    if req.query.get(FILTER):
        members = filter_members(req.query[FILTER][0], members, lambda uri: read(req, uri))
    return R.collection(odata_type, req.path, name, members, number("$skip") or 0, number("$top"))


def read(req: Request, uri: str) -> dict[str, Any] | None:
    """A resource as a plain GET of `uri` would answer it (for `$filter` and `$expand`)."""
    found = find_route(uri)
    handler = found[0].get if found else None
    if handler is None or found is None:
        return None
    try:
        result = handler(replace(req, path=uri, query={}, _json=None), **found[1])
    except ActionError:
        return None
    if isinstance(result, Response):
        return result.body if result.status == 200 and isinstance(result.body, dict) else None
    return result


def _sel_routes(base: str) -> list[tuple[str, dict[str, Handler]]]:
    return [
        (
            f"{base}/LogServices",
            {
                "get": lambda req: paged(
                    req,
                    "#LogServiceCollection.LogServiceCollection",
                    "Log Service Collection",
                    [f"{base}/LogServices/Sel"],
                )
            },
        ),
        (f"{base}/LogServices/Sel", {"get": lambda req: R.log_service(req.bmc, base)}),
        (
            f"{base}/LogServices/Sel/Entries",
            {
                "get": lambda req: paged(
                    req,
                    "#LogEntryCollection.LogEntryCollection",
                    "Log Entry Collection",
                    [f"{base}/LogServices/Sel/Entries/{e['id']}" for e in reversed(req.bmc.sel)],
                )
            },
        ),
        (
            f"{base}/LogServices/Sel/Entries/{{eid}}",
            {"get": lambda req, eid: R.sel_entry(req.bmc, base, eid)},
        ),
        (f"{base}/LogServices/Sel/Actions/LogService.ClearLog", {"post": A.clear_log}),
    ]


def _routes() -> list[Route]:
    table: list[tuple[str, dict[str, Handler]]] = [
        ("/redfish", {"get": lambda req: {"v1": f"{V1}/"}}),
        (f"{V1}/", {"get": lambda req: R.service_root(req.bmc)}),
        (f"{V1}/odata", {"get": lambda req: R.odata_document()}),
        (
            f"{V1}/$metadata",
            {"get": lambda req: Response(200, R.metadata_xml(), {"Content-Type": "application/xml"})},
        ),
        (
            f"{V1}/Systems",
            {
                "get": lambda req: paged(
                    req,
                    "#ComputerSystemCollection.ComputerSystemCollection",
                    "Computer System Collection",
                    [SYS],
                )
            },
        ),
        (SYS, {"get": lambda req: R.system(req.bmc), "patch": A.patch_system}),
        (f"{SYS}/Actions/ComputerSystem.Reset", {"post": A.reset}),
        (f"{SYS}/Bios", {"get": lambda req: R.bios(req.bmc)}),
        (f"{SYS}/Bios/Settings", {"get": lambda req: R.bios_settings(req.bmc), "patch": A.patch_bios}),
        (
            f"{SYS}/Processors",
            {
                "get": lambda req: paged(
                    req,
                    "#ProcessorCollection.ProcessorCollection",
                    "Processors Collection",
                    [f"{SYS}/Processors/{p}" for p in R.processor_ids(req.bmc)],
                )
            },
        ),
        (f"{SYS}/Processors/{{pid}}", {"get": lambda req, pid: R.processor(req.bmc, pid)}),
        (
            f"{V1}/Chassis",
            {"get": lambda req: paged(req, "#ChassisCollection.ChassisCollection", "Chassis Collection", [CHA])},
        ),
        (CHA, {"get": lambda req: R.chassis(req.bmc)}),
        (f"{CHA}/Power", {"get": lambda req: R.power(req.bmc)}),
        (f"{CHA}/Thermal", {"get": lambda req: R.thermal(req.bmc)}),
        (f"{CHA}/PowerSubsystem", {"get": lambda req: R.power_subsystem(req.bmc)}),
        (
            f"{CHA}/PowerSubsystem/PowerSupplies",
            {
                "get": lambda req: paged(
                    req,
                    "#PowerSupplyCollection.PowerSupplyCollection",
                    "Power Supply Collection",
                    [f"{CHA}/PowerSubsystem/PowerSupplies/PSU.Slot.{p['index']}" for p in req.bmc.hw.psus()],
                )
            },
        ),
        (
            f"{CHA}/PowerSubsystem/PowerSupplies/{{psu}}",
            {"get": lambda req, psu: R.power_supply(req.bmc, psu)},
        ),
        (
            f"{CHA}/PowerSubsystem/PowerSupplies/{{psu}}/Metrics",
            {"get": lambda req, psu: R.power_supply_metrics(req.bmc, psu)},
        ),
        (f"{CHA}/ThermalSubsystem", {"get": lambda req: R.thermal_subsystem(req.bmc)}),
        (
            f"{CHA}/ThermalSubsystem/Fans",
            {
                "get": lambda req: paged(
                    req,
                    "#FanCollection.FanCollection",
                    "Fan Collection",
                    [f"{CHA}/ThermalSubsystem/Fans/Fan.Embedded.{f['index']}" for f in req.bmc.hw.fans()],
                )
            },
        ),
        (f"{CHA}/ThermalSubsystem/Fans/{{fan}}", {"get": lambda req, fan: R.fan(req.bmc, fan)}),
        (f"{CHA}/ThermalSubsystem/ThermalMetrics", {"get": lambda req: R.thermal_metrics(req.bmc)}),
        (f"{CHA}/EnvironmentMetrics", {"get": lambda req: R.environment_metrics(req.bmc)}),
        (
            f"{CHA}/Sensors",
            {
                "get": lambda req: paged(
                    req,
                    "#SensorCollection.SensorCollection",
                    "Sensors",
                    [f"{CHA}/Sensors/{s}" for s in R.sensors(req.bmc)],
                )
            },
        ),
        (f"{CHA}/Sensors/{{sid}}", {"get": lambda req, sid: R.sensor(req.bmc, sid)}),
        (
            f"{V1}/Managers",
            {"get": lambda req: paged(req, "#ManagerCollection.ManagerCollection", "Manager Collection", [MGR])},
        ),
        (MGR, {"get": lambda req: R.manager(req.bmc)}),
        (f"{MGR}/Actions/Manager.Reset", {"post": A.manager_reset}),
        (f"{MGR}/NetworkProtocol", {"get": lambda req: R.network_protocol(req.bmc)}),
        *_sel_routes(MGR),
        *_sel_routes(SYS),  # iDRAC9 6.x also lists the SEL under the system, where DMTF puts it
        (
            f"{MGR}/Jobs",
            {
                "get": lambda req: paged(
                    req,
                    "#JobCollection.JobCollection",
                    "Job Collection",
                    [f"{MGR}/Jobs/{j}" for j in req.bmc.jobs],
                ),
                "post": A.job_create,
            },
        ),
        (
            f"{MGR}/Jobs/{{jid}}",
            {
                "get": lambda req, jid: A.job_resource(req, jid, False),
                "delete": lambda req, jid: A.job_delete(req, jid),
            },
        ),
        (
            f"{MGR}/Oem/Dell/Jobs",
            {
                "get": lambda req: paged(
                    req,
                    "#DellJobCollection.DellJobCollection",
                    "Dell Job Collection",
                    [f"{MGR}/Oem/Dell/Jobs/{j}" for j in req.bmc.jobs],
                )
            },
        ),
        (
            f"{MGR}/Oem/Dell/Jobs/{{jid}}",
            {"get": lambda req, jid: A.job_resource(req, jid, True), "delete": lambda req, jid: A.job_delete(req, jid)},
        ),
        (
            f"{MGR}/VirtualMedia",
            {
                "get": lambda req: paged(
                    req,
                    "#VirtualMediaCollection.VirtualMediaCollection",
                    "Virtual Media Services",
                    [f"{MGR}/VirtualMedia/{d}" for d in req.bmc.media],
                )
            },
        ),
        (f"{MGR}/VirtualMedia/{{dev}}", {"get": lambda req, dev: R.virtual_media(req.bmc, dev)}),
        (
            f"{MGR}/VirtualMedia/{{dev}}/Actions/VirtualMedia.{{action}}",
            {
                "post": lambda req, dev, action: (
                    A.media_action(req, dev, action) if action in ("InsertMedia", "EjectMedia") else None
                )
            },
        ),
        (f"{V1}/UpdateService", {"get": lambda req: R.update_service(req.bmc)}),
        (f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate", {"post": A.simple_update}),
        (f"{V1}/UpdateService/MultipartUpload", {"post": A.multipart_push}),
        (
            f"{V1}/UpdateService/FirmwareInventory",
            {
                "get": lambda req: paged(
                    req,
                    "#SoftwareInventoryCollection.SoftwareInventoryCollection",
                    "Firmware Inventory Collection",
                    [f"{V1}/UpdateService/FirmwareInventory/{i['id']}" for i in req.bmc.firmware_items()],
                )
            },
        ),
        (
            f"{V1}/UpdateService/FirmwareInventory/{{fid}}",
            {"get": lambda req, fid: R.firmware_item(req.bmc, fid)},
        ),
        (
            f"{V1}/TaskService",
            {
                "get": lambda req: R.resource(
                    "#TaskService.v1_2_0.TaskService",
                    f"{V1}/TaskService",
                    "TaskService",
                    "Task Service",
                    ServiceEnabled=True,
                    CompletedTaskOverWritePolicy="Oldest",
                    Status=R.status(),
                    Tasks=R.ref(f"{V1}/TaskService/Tasks"),
                )
            },
        ),
        (
            f"{V1}/TaskService/Tasks",
            {
                "get": lambda req: paged(
                    req,
                    "#TaskCollection.TaskCollection",
                    "Task Collection",
                    [f"{V1}/TaskService/Tasks/{j}" for j in req.bmc.jobs],
                )
            },
        ),
        (
            f"{V1}/TaskService/Tasks/{{jid}}",
            {"get": A.task_get},
        ),
        (f"{V1}/TaskService/TaskMonitors/{{jid}}", {"get": A.task_monitor}),
        (
            f"{V1}/SessionService",
            {"get": lambda req: R.session_service(req.bmc), "patch": A.patch_session_service},
        ),
        (
            f"{V1}/SessionService/Sessions",
            {
                "get": lambda req: paged(
                    req,
                    "#SessionCollection.SessionCollection",
                    "Session Collection",
                    [f"{V1}/SessionService/Sessions/{s}" for s in req.bmc.sessions],
                ),
                "post": A.session_create,
            },
        ),
        (
            f"{V1}/SessionService/Sessions/{{sid}}",
            {"get": lambda req, sid: R.session(req.bmc, sid), "delete": A.session_delete},
        ),
        (f"{V1}/AccountService", {"get": lambda req: R.account_service(req.bmc)}),
        (
            f"{V1}/AccountService/Accounts",
            {
                "get": lambda req: paged(
                    req,
                    "#ManagerAccountCollection.ManagerAccountCollection",
                    "Accounts Collection",
                    [f"{V1}/AccountService/Accounts/{n}" for n in req.bmc.accounts.slots],
                )
            },
        ),
        (
            f"{V1}/AccountService/Roles",
            {
                "get": lambda req: paged(
                    req,
                    "#RoleCollection.RoleCollection",
                    "Roles Collection",
                    [f"{V1}/AccountService/Roles/{r}" for r in ("Administrator", "Operator", "ReadOnly")],
                )
            },
        ),
        (f"{V1}/AccountService/Roles/{{rid}}", {"get": lambda req, rid: R.role(req.bmc, rid)}),
        *routes_dell.routes(paged),
    ]
    routes = []
    for path, methods in table:
        regex = re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
        regex = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", regex)
        routes.append(Route(path, re.compile(regex + "$"), **methods))
    return routes


ROUTES = _routes()
_STATIC = {r.path: r for r in ROUTES if "{" not in r.path}


def find_route(path: str) -> tuple[Route, dict[str, str]] | None:
    route = _STATIC.get(path)
    if route is not None:
        return route, {}
    for route in ROUTES:
        match = route.pattern.match(path)
        if match:
            return route, match.groupdict()
    return None
