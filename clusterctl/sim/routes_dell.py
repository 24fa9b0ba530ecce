"""URIs of a simulated iDRAC9 beyond the core table in `routes`: the system's parts (network
interfaces, memory, PCIe, storage, Secure Boot, boot sources, virtual media under the system),
the account slots, the registries, and Dell's OEM services, actions and sensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clusterctl.sim import actions as A
from clusterctl.sim import dell as D
from clusterctl.sim import resources as R
from clusterctl.sim import system_parts as P
from clusterctl.sim.protocol import Handler, Request, Response, need
from clusterctl.sim.refusal import ActionError
from clusterctl.sim.resources import CHA, MGR, SYS, V1

Paged = Callable[[Request, str, str, list[str]], dict[str, Any]]
# System virtual media (iDRAC >= 6.00) by Id, and the Managers slot each one is.
SYSTEM_MEDIA = {"1": "CD", "2": "RemovableDisk"}


def _ok(body: dict[str, Any]) -> Response:
    return Response(200, body)


def _patch_account(req: Request, aid: str) -> Response | None:
    body = R.account(req.bmc, aid)
    if body is None:
        return None
    A.check_etag(req, body)
    req.bmc.accounts.patch(int(aid), req.json())
    return Response(200, R.account(req.bmc, aid))


def _patch_secure_boot(req: Request) -> Response:
    A.check_etag(req, P.secure_boot(req.bmc))
    body = req.json()
    enable = body.get("SecureBootEnable")
    if set(body) - {"SecureBootEnable"} or not isinstance(enable, bool):
        raise ActionError(
            400,
            "Base.1.12.PropertyValueTypeError",
            "Only SecureBootEnable (a boolean) can be changed on this resource.",
            args=["SecureBootEnable"],
        )
    req.bmc.secure_boot = enable
    return Response(200, P.secure_boot(req.bmc))


def _reset_keys(req: Request) -> Response:
    kind = need(req.json(), "ResetKeysType")
    if kind not in ("ResetAllKeysToDefault", "DeleteAllKeys", "DeletePK"):
        raise ActionError(
            400,
            "Base.1.12.ActionParameterValueNotInList",
            f"The value '{kind}' for the parameter ResetKeysType is not in the list of acceptable values.",
            args=[str(kind), "ResetKeysType"],
        )
    if kind != "ResetAllKeysToDefault":
        req.bmc.secure_boot = False  # no platform key: Secure Boot cannot stay on
    return Response(204)


def _system_media(req: Request, mid: str) -> dict[str, Any] | None:
    device = SYSTEM_MEDIA.get(mid)
    body = R.virtual_media(req.bmc, device) if device else None
    if body is None:
        return None
    uri = f"{SYS}/VirtualMedia/{mid}"
    body.update({"@odata.id": uri, "Id": mid, "MediaTypes": ["CD", "DVD", "USBStick"]})
    body["Actions"] = {
        "#VirtualMedia.InsertMedia": {"target": f"{uri}/Actions/VirtualMedia.InsertMedia"},
        "#VirtualMedia.EjectMedia": {"target": f"{uri}/Actions/VirtualMedia.EjectMedia"},
    }
    return body


def _system_media_action(req: Request, mid: str, action: str) -> Response | None:
    device = SYSTEM_MEDIA.get(mid)
    if device is None or action not in ("InsertMedia", "EjectMedia"):
        return None
    return A.media_action(req, device, action)


def _chassis_reset(req: Request) -> Response:
    """DMTF Chassis.Reset PowerCycle: a full power removal and restore, as DMTF's ResetType defines it
    (Dell's script notes that iDRAC's own version of it leaves flea power; the lab does not model that)."""
    req.bmc.chassis_power_cycle(need(req.json(), "ResetType"))
    return Response(204)


def _extended_reset(req: Request) -> Response:
    body = req.json()
    req.bmc.extended_reset(need(body, "ResetType"), body.get("FinalPowerState", "On"))
    return Response(204)


def _install_from_uri(req: Request) -> Response:
    job = req.bmc.simple_update(need(req.json(), "URI"), "OnReset")
    return Response(202, None, {"Location": f"{MGR}/Jobs/{job.id}"})


def _subscription(req: Request, sid: str) -> dict[str, Any] | None:
    sub = req.bmc.subscriptions.get(sid)
    if sub is None:
        return None
    return R.resource("#EventDestination.v1_9_0.EventDestination", f"{V1}/EventService/Subscriptions/{sid}", sid,
                      "EventSubscription", Description="Event Subscription Details", **sub)


def _subscribe(req: Request) -> Response:
    """An event destination is recorded (and listed) as iDRAC records it; the lab never sends events."""
    body = req.json()
    destination = need(body, "Destination")
    if not destination.startswith("https://"):
        raise ActionError(400, "Base.1.12.PropertyValueFormatError",
                          f"The value '{destination}' for the property Destination is of a different format than "
                          "the property can accept.", args=[destination, "Destination"])
    protocol = body.get("Protocol", "Redfish")
    if protocol != "Redfish":
        raise ActionError(400, "Base.1.12.PropertyValueNotInList",
                          f"The value '{protocol}' for the property Protocol is not in the list of acceptable values.",
                          args=[str(protocol), "Protocol"])
    sid = str(max((int(i) for i in req.bmc.subscriptions), default=0) + 1)
    req.bmc.subscriptions[sid] = {
        "Destination": destination,
        "Protocol": "Redfish",
        "Context": str(body.get("Context", "")),
        "EventFormatType": str(body.get("EventFormatType", "Event")),
        "SubscriptionType": "RedfishEvent",
    }
    uri = f"{V1}/EventService/Subscriptions/{sid}"
    return Response(201, _subscription(req, sid), {"Location": uri})


def _unsubscribe(req: Request, sid: str) -> Response | None:
    if req.bmc.subscriptions.pop(sid, None) is None:
        return None
    return Response(200, D.success("The resource has been removed successfully.", "Base.1.12.ResourceRemoved"))


def _scp(kind: str) -> Handler:
    def handle(req: Request) -> Response:
        job = (D.export_scp if kind == "Export" else D.import_scp)(req.bmc, req.json())
        return Response(202, None, {"Location": f"{V1}/TaskService/Tasks/{job.id}"})

    return handle


def _service_routes(base: str) -> list[tuple[str, dict[str, Handler]]]:
    def get(name: str) -> Handler:
        return lambda req: D.service(name, base)

    table: list[tuple[str, dict[str, Handler]]] = [(f"{base}/{n}", {"get": get(n)}) for n in D.SERVICES]
    table += [
        (
            f"{base}/DellJobService/Actions/DellJobService.DeleteJobQueue",
            {"post": lambda req: _ok(D.delete_job_queue(req.bmc, req.json()))},
        ),
        (
            f"{base}/DellLCService/Actions/DellLCService.GetRemoteServicesAPIStatus",
            {"post": lambda req: _ok(R.lc_status(req.bmc))},
        ),
        (
            f"{base}/DelliDRACCardService/Actions/DelliDRACCardService.iDRACReset",
            {"post": lambda req: _ok(D.idrac_reset(req.bmc, req.json()))},
        ),
        (
            f"{base}/DellSoftwareInstallationService/Actions/DellSoftwareInstallationService.InstallFromURI",
            {"post": _install_from_uri},
        ),
    ]
    return table


def routes(paged: Paged) -> list[tuple[str, dict[str, Handler]]]:
    def coll(odata_type: str, name: str, members: Callable[[Request], list[str]]) -> dict[str, Handler]:
        return {"get": lambda req: paged(req, odata_type, name, members(req))}

    return [
        # --- parts of the system and chassis ---
        (f"{SYS}/EthernetInterfaces", coll(
            "#EthernetInterfaceCollection.EthernetInterfaceCollection", "System Ethernet Interface Collection",
            lambda req: [f"{SYS}/EthernetInterfaces/{n}" for n in P.nic_ids()])),
        (f"{SYS}/EthernetInterfaces/{{nid}}", {"get": lambda req, nid: P.ethernet_interface(req.bmc, nid)}),
        (f"{SYS}/Memory", coll("#MemoryCollection.MemoryCollection", "Memory Devices Collection",
                               lambda req: [f"{SYS}/Memory/{m}" for m in P.dimm_ids()])),
        (f"{SYS}/Memory/{{mid}}", {"get": lambda req, mid: P.memory(req.bmc, mid)}),
        (f"{CHA}/PCIeDevices", coll("#PCIeDeviceCollection.PCIeDeviceCollection", "PCIe Device Collection",
                                    lambda req: [f"{CHA}/PCIeDevices/{d}" for d in P.pcie_ids(req.bmc)])),
        (f"{CHA}/PCIeDevices/{{did}}", {"get": lambda req, did: P.pcie_device(req.bmc, did)}),
        (f"{CHA}/PCIeDevices/{{did}}/PCIeFunctions", {"get": lambda req, did: paged(
            req, "#PCIeFunctionCollection.PCIeFunctionCollection", "PCIe Function Collection",
            [f"{CHA}/PCIeDevices/{did}/PCIeFunctions/{did}"]) if did in P.pcie_ids(req.bmc) else None}),
        (f"{CHA}/PCIeDevices/{{did}}/PCIeFunctions/{{fid}}",
         {"get": lambda req, did, fid: P.pcie_function(req.bmc, did, fid)}),
        (f"{SYS}/Storage", coll("#StorageCollection.StorageCollection", "Storage Collection",
                                lambda req: [f"{SYS}/Storage/{s}" for s in P.STORAGE])),
        (f"{SYS}/Storage/{{sid}}", {"get": lambda req, sid: P.storage(req.bmc, sid)}),
        (f"{SYS}/Storage/{{sid}}/Drives/{{did}}", {"get": lambda req, sid, did: P.drive(req.bmc, sid, did)}),
        (f"{SYS}/Storage/{{sid}}/Volumes", {"get": lambda req, sid: paged(
            req, "#VolumeCollection.VolumeCollection", "Volume Collection",
            [f"{SYS}/Storage/{sid}/Volumes/{v}" for v in P.STORAGE[sid]["volumes"]]) if sid in P.STORAGE else None}),
        (f"{SYS}/Storage/{{sid}}/Volumes/{{vid}}", {"get": lambda req, sid, vid: P.volume(req.bmc, sid, vid)}),
        (f"{SYS}/SecureBoot", {"get": lambda req: P.secure_boot(req.bmc), "patch": _patch_secure_boot}),
        (f"{SYS}/SecureBoot/Actions/SecureBoot.ResetKeys", {"post": _reset_keys}),
        (f"{SYS}/BootSources", {"get": lambda req: P.boot_sources_resource(req.bmc, False)}),
        (f"{SYS}/Oem/Dell/DellBootSources", {"get": lambda req: P.boot_sources_resource(req.bmc, True)}),
        (f"{SYS}/Bios/BiosRegistry", {"get": lambda req: P.bios_registry(req.bmc)}),
        (f"{SYS}/VirtualMedia", coll("#VirtualMediaCollection.VirtualMediaCollection", "Virtual Media Services",
                                     lambda req: [f"{SYS}/VirtualMedia/{m}" for m in SYSTEM_MEDIA])),
        (f"{SYS}/VirtualMedia/{{mid}}", {"get": _system_media}),
        (f"{SYS}/VirtualMedia/{{mid}}/Actions/VirtualMedia.{{action}}", {"post": _system_media_action}),
        (f"{CHA}/Actions/Chassis.Reset", {"post": _chassis_reset}),
        (f"{CHA}/Actions/Oem/DellOemChassis.ExtendedReset", {"post": _extended_reset}),
        # --- Dell sensors ---
        (f"{SYS}/Oem/Dell/DellGPUSensors", coll(
            "#DellGPUSensorCollection.DellGPUSensorCollection", "DellGPUSensorCollection",
            lambda req: [f"{SYS}/Oem/Dell/DellGPUSensors/{s}" for s in D.gpu_sensor_ids(req.bmc)])),
        (f"{SYS}/Oem/Dell/DellGPUSensors/{{sid}}", {"get": lambda req, sid: D.gpu_sensor(req.bmc, sid)}),
        (f"{SYS}/Oem/Dell/DellNumericSensors", coll(
            "#DellNumericSensorCollection.DellNumericSensorCollection", "DellNumericSensorCollection",
            lambda req: [f"{SYS}/Oem/Dell/DellNumericSensors/{s}" for s in D.numeric_sensors(req.bmc)])),
        (f"{SYS}/Oem/Dell/DellNumericSensors/{{sid}}", {"get": lambda req, sid: D.numeric_sensor(req.bmc, sid)}),
        # --- manager: its port, attributes, SCP, Dell services at both prefixes ---
        (f"{MGR}/EthernetInterfaces", coll(
            "#EthernetInterfaceCollection.EthernetInterfaceCollection", "Manager Ethernet Interface Collection",
            lambda req: [f"{MGR}/EthernetInterfaces/NIC.1"])),
        (f"{MGR}/EthernetInterfaces/{{nid}}", {"get": lambda req, nid: R.manager_nic(req.bmc, nid)}),
        (f"{MGR}/Attributes", {
            "get": lambda req: D.attributes(req.bmc),
            "patch": lambda req: (D.patch_attributes(req.bmc, req.json()), Response(200, D.attributes(req.bmc)))[1],
        }),
        (f"{MGR}/Actions/Oem/EID_674_Manager.ExportSystemConfiguration", {"post": _scp("Export")}),
        (f"{MGR}/Actions/Oem/EID_674_Manager.ImportSystemConfiguration", {"post": _scp("Import")}),
        *_service_routes(D.OEM_MGR),
        *_service_routes(D.DELL_MGR),
        # --- services a real iDRAC9 lists in its service root, served as the lab has them: empty ---
        (f"{V1}/EventService", {"get": lambda req: R.resource(
            "#EventService.v1_7_2.EventService", f"{V1}/EventService", "EventService", "Event Service",
            ServiceEnabled=True, DeliveryRetryAttempts=3, DeliveryRetryIntervalSeconds=5,
            EventFormatTypes=["Event", "MetricReport"], Status=R.status(),
            Subscriptions=R.ref(f"{V1}/EventService/Subscriptions"))}),
        (f"{V1}/EventService/Subscriptions", {**coll(
            "#EventDestinationCollection.EventDestinationCollection", "Event Subscriptions Collection",
            lambda req: [f"{V1}/EventService/Subscriptions/{i}" for i in req.bmc.subscriptions]),
            "post": _subscribe}),
        (f"{V1}/EventService/Subscriptions/{{sid}}", {"get": _subscription, "delete": _unsubscribe}),
        (f"{V1}/CertificateService", {"get": lambda req: R.resource(
            "#CertificateService.v1_0_4.CertificateService", f"{V1}/CertificateService", "CertificateService",
            "Certificate Service", Description="Represents the properties of the Certificate Service")}),
        (f"{V1}/TelemetryService", {"get": lambda req: R.resource(
            "#TelemetryService.v1_3_1.TelemetryService", f"{V1}/TelemetryService", "TelemetryService",
            "Telemetry Service", ServiceEnabled=False, Status=R.status(state="Disabled"))}),
        (f"{V1}/JsonSchemas", coll("#JsonSchemaFileCollection.JsonSchemaFileCollection", "JsonSchemaFile Collection",
                                   lambda req: [])),
        (f"{V1}/Fabrics", coll("#FabricCollection.FabricCollection", "Fabric Collection", lambda req: [])),
        (f"{SYS}/Settings", {"get": lambda req: R.resource(
            "#ComputerSystem.v1_20_0.ComputerSystem", f"{SYS}/Settings", "Settings",
            "System Pending Settings", Boot={})}),  # boot overrides apply at once: nothing is ever pending
        (f"{V1}/Dell/Systems/System.Embedded.1/DellSystem", {"get": lambda req: R.resource(
            "#DellSystem.v1_3_0.DellSystem", f"{V1}/Dell/Systems/System.Embedded.1/DellSystem",
            "System.Embedded.1", "DellSystem", ChassisServiceTag=req.bmc.hw.service_tag,
            ChassisModel="PowerEdge XE9680", SystemGeneration="16G DCS")}),
        # --- accounts and registries ---
        (f"{V1}/AccountService/Accounts/{{aid}}", {"get": lambda req, aid: R.account(req.bmc, aid),
                                                   "patch": _patch_account}),
        (f"{V1}/Registries", coll("#MessageRegistryFileCollection.MessageRegistryFileCollection",
                                  "Registry File Collection",
                                  lambda req: [f"{V1}/Registries/{r}" for r in P.REGISTRIES])),
        (f"{V1}/Registries/{{rid}}", {"get": lambda req, rid: P.registry_file(rid)}),
    ]
