"""Redfish resource bodies of a simulated iDRAC9, rendered from the BMC and hardware state.

Shapes follow iDRAC9 (URIs, Ids such as System.Embedded.1 and JID_..., Dell OEM job
fields) on DMTF schemas; each function returns a JSON-able dict for one URI.
"""

from __future__ import annotations

from typing import Any

from clusterctl.sim.bmc import BMC, RESET_TYPES, Job
from clusterctl.sim.node import (
    GPU_COUNT,
    INLET_CRIT_C,
    INLET_WARN_C,
    POWER_LIMIT_W,
    PSU_CAPACITY_W,
    PSU_COUNT,
)

V1 = "/redfish/v1"
SYS = f"{V1}/Systems/System.Embedded.1"
CHA = f"{V1}/Chassis/System.Embedded.1"
MGR = f"{V1}/Managers/iDRAC.Embedded.1"
PAGE_SIZE = 32
SERVICE_UUID = "4c4c4544-0000-1000-8000-00000000lab0"


def ref(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def status(health: str = "OK", state: str = "Enabled") -> dict[str, str]:
    return {"State": state, "Health": health, "HealthRollup": health}


def context(odata_type: str) -> str:
    """`@odata.context` as iDRAC9 still sends it on every resource: the metadata URL and the type."""
    parts = odata_type.lstrip("#").split(".")
    return f"{V1}/$metadata#{parts[0]}.{parts[-1]}"


def resource(odata_type: str, uri: str, rid: str, name: str, **body: Any) -> dict[str, Any]:
    return {"@odata.context": context(odata_type), "@odata.id": uri, "@odata.type": odata_type, "Id": rid,
            "Name": name, **body}


def collection(
    odata_type: str, uri: str, name: str, members: list[str], skip: int = 0, top: int | None = None
) -> dict[str, Any]:
    """A collection page; more than PAGE_SIZE members continue through Members@odata.nextLink."""
    size = PAGE_SIZE if top is None else min(top, PAGE_SIZE)
    page = members[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": context(odata_type),
        "@odata.id": uri,
        "@odata.type": odata_type,
        "Name": name,
        "Description": f"Collection of {name}",
        "Members@odata.count": len(members),
        "Members": [ref(m) for m in page],
    }
    if skip + size < len(members) and (top is None or top > size):
        rest = "" if top is None else f"&$top={top - size}"
        body["Members@odata.nextLink"] = f"{uri}?$skip={skip + size}{rest}"
    return body


# --- service ---------------------------------------------------------------------------------------
def service_root(bmc: BMC | None) -> dict[str, Any]:
    return resource(
        "#ServiceRoot.v1_16_0.ServiceRoot",
        f"{V1}/",
        "RootService",
        "Root Service",
        RedfishVersion="1.18.0",
        UUID=SERVICE_UUID,
        Product="Integrated Dell Remote Access Controller",
        Vendor="Dell",
        Systems=ref(f"{V1}/Systems"),
        Chassis=ref(f"{V1}/Chassis"),
        Managers=ref(f"{V1}/Managers"),
        UpdateService=ref(f"{V1}/UpdateService"),
        Tasks=ref(f"{V1}/TaskService"),
        SessionService=ref(f"{V1}/SessionService"),
        AccountService=ref(f"{V1}/AccountService"),
        Registries=ref(f"{V1}/Registries"),
        TaskService=ref(f"{V1}/TaskService"),
        EventService=ref(f"{V1}/EventService"),
        CertificateService=ref(f"{V1}/CertificateService"),
        TelemetryService=ref(f"{V1}/TelemetryService"),
        JsonSchemas=ref(f"{V1}/JsonSchemas"),
        Fabrics=ref(f"{V1}/Fabrics"),
        Description="Root Service",
        Links={"Sessions": ref(f"{V1}/SessionService/Sessions")},
        ProtocolFeaturesSupported={
            "ExpandQuery": {"ExpandAll": True, "Levels": True, "Links": True, "NoLinks": True, "MaxLevels": 1},
            "SelectQuery": True,
            "FilterQuery": True,
            "OnlyMemberQuery": False,
            "ExcerptQuery": False,
            "DeepOperations": {"DeepPATCH": False, "DeepPOST": False},
        },
        Oem={
            "Dell": {
                "@odata.type": "#DellServiceRoot.v1_0_0.DellServiceRoot",
                "ServiceTag": bmc.hw.service_tag if bmc else "",
            }
        },
    )


def odata_document() -> dict[str, Any]:
    names = [
        "Systems",
        "Chassis",
        "Managers",
        "UpdateService",
        "TaskService",
        "SessionService",
        "AccountService",
        "Registries",
    ]
    return {
        "@odata.context": f"{V1}/$metadata",
        "value": [{"name": "Service", "kind": "Singleton", "url": f"{V1}/"}]
        + [{"name": n, "kind": "Singleton", "url": f"{V1}/{n}"} for n in names],
    }


_NAMESPACES = [
    ("ServiceRoot", "v1_16_0"),
    ("ComputerSystemCollection", None),
    ("ComputerSystem", "v1_20_0"),
    ("ChassisCollection", None),
    ("Chassis", "v1_23_0"),
    ("ManagerCollection", None),
    ("Manager", "v1_18_0"),
    ("Bios", "v1_2_1"),
    ("ProcessorCollection", None),
    ("Processor", "v1_18_0"),
    ("Power", "v1_7_1"),
    ("Thermal", "v1_7_1"),
    ("PowerSubsystem", "v1_1_0"),
    ("PowerSupplyCollection", None),
    ("PowerSupply", "v1_5_1"),
    ("ThermalSubsystem", "v1_2_0"),
    ("FanCollection", None),
    ("Fan", "v1_4_0"),
    ("ThermalMetrics", "v1_2_0"),
    ("EnvironmentMetrics", "v1_3_0"),
    ("SensorCollection", None),
    ("Sensor", "v1_8_0"),
    ("UpdateService", "v1_11_0"),
    ("SoftwareInventoryCollection", None),
    ("SoftwareInventory", "v1_9_0"),
    ("TaskService", "v1_2_0"),
    ("TaskCollection", None),
    ("Task", "v1_7_1"),
    ("SessionService", "v1_1_8"),
    ("SessionCollection", None),
    ("Session", "v1_6_0"),
    ("LogServiceCollection", None),
    ("LogService", "v1_4_0"),
    ("LogEntryCollection", None),
    ("LogEntry", "v1_15_0"),
    ("JobCollection", None),
    ("Job", "v1_2_1"),
    ("VirtualMediaCollection", None),
    ("VirtualMedia", "v1_6_0"),
    ("AccountService", "v1_13_0"),
    ("ManagerAccountCollection", None),
    ("ManagerAccount", "v1_10_0"),
    ("RoleCollection", None),
    ("Role", "v1_3_1"),
    ("ManagerNetworkProtocol", "v1_9_0"),
    ("Message", "v1_1_2"),
    ("Resource", "v1_16_0"),
    ("RedfishExtensions", "v1_0_0"),
]


def metadata_xml() -> str:
    refs = []
    for name, version in _NAMESPACES:
        inc = f'    <edmx:Include Namespace="{name}"/>\n'
        if version:
            inc += f'    <edmx:Include Namespace="{name}.{version}"/>\n'
        alias = ' Alias="Redfish"' if name == "RedfishExtensions" else ""
        if alias:
            inc = f'    <edmx:Include Namespace="{name}.{version}"{alias}/>\n'
        refs.append(
            f'  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/{name}_v1.xml">\n{inc}  </edmx:Reference>\n'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
        + "".join(refs)
        + '  <edmx:DataServices>\n    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" '
        'Namespace="Service">\n      <EntityContainer Name="Service" '
        'Extends="ServiceRoot.v1_16_0.ServiceContainer"/>\n    </Schema>\n  </edmx:DataServices>\n'
        "</edmx:Edmx>\n"
    )


# --- systems ---------------------------------------------------------------------------------------
def system(bmc: BMC) -> dict[str, Any]:
    from clusterctl.sim import dell
    from clusterctl.sim import system_parts as parts

    hw = bmc.hw
    gpus = sum(1 for i in range(GPU_COUNT) if hw.gpu_present(i))
    health = "OK" if gpus == GPU_COUNT and not hw.faults_of("xid") else "Critical"
    return resource(
        "#ComputerSystem.v1_20_0.ComputerSystem",
        SYS,
        "System.Embedded.1",
        "System",
        SystemType="Physical",
        Description="Computer System which represents a machine (physical or virtual) and the local resources "
        "such as memory, cpu and other devices that can be accessed from that machine.",
        Manufacturer="Dell Inc.",
        Model="PowerEdge XE9680",
        PartNumber="0DKMPKA01",
        IndicatorLED="Off",
        HostWatchdogTimer={"FunctionEnabled": False, "Status": {"State": "StandbyOffline"}, "TimeoutAction": "None"},
        LogServices=ref(f"{SYS}/LogServices"),
        Oem={"Dell": {"@odata.type": "#DellOem.v1_3_0.DellOemResources",
                      "DellSystem": {"@odata.id": f"{V1}/Dell/Systems/System.Embedded.1/DellSystem",
                                     "ChassisServiceTag": hw.service_tag, "ServerAllocationWatts": None}}},
        **{"@Redfish.Settings": {
            "@odata.type": "#Settings.v1_3_5.Settings",
            "SettingsObject": ref(f"{SYS}/Settings"),
            "SupportedApplyTimes": ["OnReset"],
        }},
        SKU=hw.service_tag,
        SerialNumber=f"CNFCP00{hw.index:05d}",
        HostName=hw.name,
        AssetTag=bmc.asset_tag,
        UUID=f"4c4c4544-{hw.index:04x}-1000-8000-{hw.service_tag.encode().hex()[:12]:0<12}",
        PowerState=bmc.power_state,
        BiosVersion=bmc.firmware["bios"],
        Status=status(health),
        BootProgress={"LastState": bmc.boot_progress},
        ProcessorSummary={"Count": 2, "Model": "Intel(R) Xeon(R) Platinum 8480+", "Status": status()},
        MemorySummary={"TotalSystemMemoryGiB": 2048, "Status": status()},
        Boot=parts.boot(bmc),
        Bios=ref(f"{SYS}/Bios"),
        Processors=ref(f"{SYS}/Processors"),
        Memory=ref(f"{SYS}/Memory"),
        EthernetInterfaces=ref(f"{SYS}/EthernetInterfaces"),
        Storage=ref(f"{SYS}/Storage"),
        SecureBoot=ref(f"{SYS}/SecureBoot"),
        VirtualMedia=ref(f"{SYS}/VirtualMedia"),
        PCIeDevices=[ref(f"{CHA}/PCIeDevices/{d}") for d in parts.pcie_ids(bmc)],
        PCIeFunctions=[ref(f"{CHA}/PCIeDevices/{d}/PCIeFunctions/{d}") for d in parts.pcie_ids(bmc)],
        Links={"Chassis": [ref(CHA)], "ManagedBy": [ref(MGR)], "Oem": {"Dell": dell.system_oem_links()}},
        Actions={
            "#ComputerSystem.Reset": {
                "target": f"{SYS}/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
            }
        },
    )


def processor_ids(bmc: BMC) -> list[str]:
    gpus = [f"Video.Slot.{i + 1}-1" for i in range(GPU_COUNT) if bmc.hw.gpu_present(i)]
    return ["CPU.Socket.1", "CPU.Socket.2"] + gpus


def processor(bmc: BMC, pid: str) -> dict[str, Any] | None:
    if pid not in processor_ids(bmc):
        return None
    uri = f"{SYS}/Processors/{pid}"
    if pid.startswith("CPU"):
        return resource(
            "#Processor.v1_18_0.Processor",
            uri,
            pid,
            "CPU",
            ProcessorType="CPU",
            Manufacturer="Intel",
            Model="Intel(R) Xeon(R) Platinum 8480+",
            TotalCores=56,
            TotalThreads=112,
            Socket=pid,
            Status=status(),
        )
    i = int(pid.split(".")[2].split("-")[0]) - 1
    hw = bmc.hw
    hot = any(p["gpu"] == i for p in hw.faults_of("xid"))
    return resource(
        "#Processor.v1_18_0.Processor",
        uri,
        pid,
        f"GPU {i}",
        ProcessorType="GPU",
        Manufacturer="NVIDIA",
        Model="NVIDIA H100 SXM5 80GB",
        SerialNumber=hw.gpu_serial(i),
        UUID=hw.gpu_uuid(i)[4:],
        FirmwareVersion=bmc.firmware["gpu"],
        Status=status("Critical" if hot else "OK"),
        Socket=f"SXM{i + 1}",
    )


def bios(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#Bios.v1_2_1.Bios",
        f"{SYS}/Bios",
        "Bios",
        "BIOS Configuration Current Settings",
        Description="BIOS Configuration Current Settings",
        AttributeRegistry="BiosAttributeRegistry.v1_0_3",
        Attributes=dict(bmc.bios),
        **{
            "@Redfish.Settings": {
                "@odata.type": "#Settings.v1_3_5.Settings",
                "SettingsObject": ref(f"{SYS}/Bios/Settings"),
                "SupportedApplyTimes": ["OnReset", "AtMaintenanceWindowStart", "InMaintenanceWindowOnReset"],
            }
        },
        Actions={"#Bios.ResetBios": {"target": f"{SYS}/Bios/Actions/Bios.ResetBios"}},
    )


def bios_settings(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#Bios.v1_2_1.Bios",
        f"{SYS}/Bios/Settings",
        "Settings",
        "BIOS Configuration Pending Settings",
        AttributeRegistry="BiosAttributeRegistry.v1_0_3",
        Description="BIOS Configuration Pending Settings",
        Attributes=dict(bmc.bios_pending),
    )


# --- chassis ---------------------------------------------------------------------------------------
def chassis(bmc: BMC) -> dict[str, Any]:
    hw = bmc.hw
    bad = hw.faults_of("psu_failed") or hw.faults_of("fan_failed") or hw.faults_of("inlet_temp_high")
    return resource(
        "#Chassis.v1_23_0.Chassis",
        CHA,
        "System.Embedded.1",
        "Computer System Chassis",
        ChassisType="RackMount",
        Manufacturer="Dell Inc.",
        Model="PowerEdge XE9680",
        SKU=hw.service_tag,
        SerialNumber=f"CNFCP00{hw.index:05d}",
        PowerState=bmc.power_state,
        Status=status("Critical" if bad else "OK"),
        Power=ref(f"{CHA}/Power"),
        Thermal=ref(f"{CHA}/Thermal"),
        PowerSubsystem=ref(f"{CHA}/PowerSubsystem"),
        ThermalSubsystem=ref(f"{CHA}/ThermalSubsystem"),
        EnvironmentMetrics=ref(f"{CHA}/EnvironmentMetrics"),
        Sensors=ref(f"{CHA}/Sensors"),
        PCIeDevices=ref(f"{CHA}/PCIeDevices"),
        Links={"ComputerSystems": [ref(SYS)], "ManagedBy": [ref(MGR)]},
        Actions={
            "#Chassis.Reset": {
                "target": f"{CHA}/Actions/Chassis.Reset",
                "ResetType@Redfish.AllowableValues": ["PowerCycle"],
            },
            "Oem": {
                "#DellOemChassis.ExtendedReset": {
                    "target": f"{CHA}/Actions/Oem/DellOemChassis.ExtendedReset",
                    "ResetType@Redfish.AllowableValues": ["PowerCycle"],
                    "FinalPowerState@Redfish.AllowableValues": ["On", "Off"],
                }
            },
        },
    )


def _psu_body(p: dict[str, Any], uri: str, version: str) -> dict[str, Any]:
    return {
        "@odata.id": uri,
        "Name": f"PS{p['index']} Status",
        "Manufacturer": "DELL",
        "Model": "PWR SPLY,2800W,RDNT,LTON",
        "FirmwareVersion": version,
        "PowerCapacityWatts": p["capacity_w"],
        "PowerOutputWatts": p["output_w"],
        "LineInputVoltage": p["input_v"],
        "Status": status("OK" if p["healthy"] else "Critical"),
    }


def _input_watts(p: dict[str, Any]) -> float:
    return round(p["output_w"] / 0.96, 1)  # ~96% efficient (Titanium)


def power(bmc: BMC) -> dict[str, Any]:
    hw = bmc.hw
    watts = hw.power_watts()
    psus = []
    for p in hw.psus():
        body = _psu_body(p, f"{CHA}/Power#/PowerSupplies/{p['index'] - 1}", bmc.firmware["psu"])
        body["MemberId"] = f"PSU.Slot.{p['index']}"
        body["PowerInputWatts"] = _input_watts(p)  # iDRAC's legacy Power carries it too
        body["LastPowerOutputWatts"] = p["output_w"]
        psus.append(body)
    return resource(
        "#Power.v1_7_1.Power",
        f"{CHA}/Power",
        "Power",
        "Power",
        PowerControl=[
            {
                "@odata.id": f"{CHA}/Power#/PowerControl/0",
                "MemberId": "PowerControl",
                "Name": "System Power Control",
                "PowerConsumedWatts": watts,
                "PowerCapacityWatts": PSU_CAPACITY_W * 4,
                "PowerLimit": {"LimitInWatts": POWER_LIMIT_W, "LimitException": "HardPowerOff"},
                "Status": status("Warning" if watts > POWER_LIMIT_W else "OK"),
            }
        ],
        PowerSupplies=psus,
        Voltages=[
            {
                "@odata.id": f"{CHA}/Power#/Voltages/{n}",
                "MemberId": f"PS{p['index']} Voltage 1",
                "Name": f"PS{p['index']} Voltage 1",
                "ReadingVolts": p["input_v"],
                "PhysicalContext": "PowerSupply",
                "Status": status("OK" if p["healthy"] else "Critical"),
            }
            for n, p in enumerate(hw.psus())
        ],
    )


def _fan_body(f: dict[str, Any], uri: str) -> dict[str, Any]:
    return {
        "@odata.id": uri,
        "Name": f"Fan {f['index']}",
        "PhysicalContext": "SystemBoard",
        "Reading": f["rpm"],
        "ReadingUnits": "RPM",
        "LowerThresholdCritical": 600,
        "Status": status("OK" if f["healthy"] else "Critical"),
    }


def _temps(bmc: BMC) -> list[tuple[str, str, float, float, float]]:
    hw = bmc.hw
    temps = [
        ("SystemBoardInletTemp", "System Board Inlet Temp", hw.inlet_c(), INLET_WARN_C, INLET_CRIT_C),
        ("SystemBoardExhaustTemp", "System Board Exhaust Temp", hw.exhaust_c(), 70.0, 75.0),
    ]
    temps += [
        (f"GPU{i + 1}Temp", f"GPU {i + 1} Temp", hw.gpu_temp_c(i), 87.0, 92.0)
        for i in range(GPU_COUNT)
        if hw.gpu_present(i)
    ]
    return temps


def thermal(bmc: BMC) -> dict[str, Any]:
    temps = []
    for n, (tid, name, reading, warn, crit) in enumerate(_temps(bmc)):
        health = "Critical" if reading >= crit else "Warning" if reading >= warn else "OK"
        temps.append(
            {
                "@odata.id": f"{CHA}/Thermal#/Temperatures/{n}",
                "MemberId": tid,
                "Name": name,
                "ReadingCelsius": reading,
                "UpperThresholdNonCritical": warn,
                "UpperThresholdCritical": crit,
                "Status": status(health),
            }
        )
    fans = []
    for n, f in enumerate(bmc.hw.fans()):
        body = _fan_body(f, f"{CHA}/Thermal#/Fans/{n}")
        body["MemberId"] = f"Fan.Embedded.{f['index']}"
        body["FanName"] = body["Name"]
        fans.append(body)
    return resource("#Thermal.v1_7_1.Thermal", f"{CHA}/Thermal", "Thermal", "Thermal", Temperatures=temps, Fans=fans)


def power_subsystem(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#PowerSubsystem.v1_1_0.PowerSubsystem",
        f"{CHA}/PowerSubsystem",
        "PowerSubsystem",
        "Power Subsystem",
        CapacityWatts=PSU_CAPACITY_W * 4,
        PowerSupplyRedundancy=[
            {"MaxSupportedInGroup": PSU_COUNT, "MinNeededInGroup": PSU_COUNT - 2, "RedundancyType": "NPlusM",
             "Status": {"Health": "OK", "State": "Enabled"}}
        ],
        PowerSupplies=ref(f"{CHA}/PowerSubsystem/PowerSupplies"),
        Status=status(),
    )


def power_supply(bmc: BMC, psu_id: str) -> dict[str, Any] | None:
    for p in bmc.hw.psus():
        if f"PSU.Slot.{p['index']}" == psu_id:
            uri = f"{CHA}/PowerSubsystem/PowerSupplies/{psu_id}"
            body = _psu_body(p, uri, bmc.firmware["psu"])
            body.pop("PowerOutputWatts")
            body.pop("LineInputVoltage")
            return {
                "@odata.type": "#PowerSupply.v1_5_1.PowerSupply",
                "Id": psu_id,
                **body,
                "PowerSupplyType": "AC",
                "InputNominalVoltageType": "AC200To240V",
                "Metrics": ref(f"{uri}/Metrics"),
            }
    return None


def power_supply_metrics(bmc: BMC, psu_id: str) -> dict[str, Any] | None:
    for p in bmc.hw.psus():
        if f"PSU.Slot.{p['index']}" == psu_id:
            output = p["output_w"]
            return resource(
                "#PowerSupplyMetrics.v1_0_1.PowerSupplyMetrics",
                f"{CHA}/PowerSubsystem/PowerSupplies/{psu_id}/Metrics",
                "Metrics",
                f"PS{p['index']} Metrics",
                InputPowerWatts={"Reading": _input_watts(p)},
                InputVoltage={"Reading": p["input_v"]},
                OutputPowerWatts={"Reading": output},
            )
    return None


def thermal_subsystem(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#ThermalSubsystem.v1_2_0.ThermalSubsystem",
        f"{CHA}/ThermalSubsystem",
        "ThermalSubsystem",
        "Thermal Subsystem",
        Fans=ref(f"{CHA}/ThermalSubsystem/Fans"),
        ThermalMetrics=ref(f"{CHA}/ThermalSubsystem/ThermalMetrics"),
        Status=status(),
    )


def fan(bmc: BMC, fan_id: str) -> dict[str, Any] | None:
    for f in bmc.hw.fans():
        if f"Fan.Embedded.{f['index']}" == fan_id:
            body = _fan_body(f, f"{CHA}/ThermalSubsystem/Fans/{fan_id}")
            reading = body.pop("Reading")
            body.pop("ReadingUnits")
            body.pop("LowerThresholdCritical")
            return {
                "@odata.type": "#Fan.v1_4_0.Fan",
                "Id": fan_id,
                **body,
                "SpeedPercent": {
                    "SpeedRPM": reading,
                    "Reading": round(100 * reading / 16000, 1),
                    "DataSourceUri": f"{CHA}/Sensors/{fan_id}",
                },
            }
    return None


def thermal_metrics(bmc: BMC) -> dict[str, Any]:
    readings = [
        {"DeviceName": name, "Reading": reading, "DataSourceUri": f"{CHA}/Sensors/{tid}"}
        for tid, name, reading, _, _ in _temps(bmc)
    ]
    return resource(
        "#ThermalMetrics.v1_2_0.ThermalMetrics",
        f"{CHA}/ThermalSubsystem/ThermalMetrics",
        "ThermalMetrics",
        "Thermal Metrics",
        TemperatureReadingsCelsius=readings,
        TemperatureSummaryCelsius={
            "Intake": {"Reading": readings[0]["Reading"], "DataSourceUri": readings[0]["DataSourceUri"]},
            "Exhaust": {"Reading": readings[1]["Reading"], "DataSourceUri": readings[1]["DataSourceUri"]},
        },
    )


def environment_metrics(bmc: BMC) -> dict[str, Any]:
    hw = bmc.hw
    return resource(
        "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
        f"{CHA}/EnvironmentMetrics",
        "EnvironmentMetrics",
        "Chassis Environment Metrics",
        TemperatureCelsius={"Reading": hw.inlet_c(), "DataSourceUri": f"{CHA}/Sensors/SystemBoardInletTemp"},
        PowerWatts={"Reading": hw.power_watts(), "DataSourceUri": f"{CHA}/Sensors/SystemBoardPwrConsumption"},
        PowerLimitWatts={"SetPoint": POWER_LIMIT_W},
    )


def sensors(bmc: BMC) -> dict[str, dict[str, Any]]:
    """Every sensor by Id: temperatures, fans, PSU output and the system power reading."""
    out: dict[str, dict[str, Any]] = {}
    for tid, name, reading, warn, crit in _temps(bmc):
        health = "Critical" if reading >= crit else "Warning" if reading >= warn else "OK"
        out[tid] = {
            "Name": name,
            "Reading": reading,
            "ReadingType": "Temperature",
            "ReadingUnits": "Cel",
            "Thresholds": {"UpperCaution": {"Reading": warn}, "UpperCritical": {"Reading": crit}},
            "Status": status(health),
        }
    for f in bmc.hw.fans():
        out[f"Fan.Embedded.{f['index']}"] = {
            "Name": f"Fan {f['index']}",
            "Reading": f["rpm"],
            "ReadingType": "Rotational",
            "ReadingUnits": "RPM",
            "Status": status("OK" if f["healthy"] else "Critical"),
        }
    for p in bmc.hw.psus():
        out[f"PSU.Slot.{p['index']}"] = {
            "Name": f"PS{p['index']} Output",
            "Reading": p["output_w"],
            "ReadingType": "Power",
            "ReadingUnits": "W",
            "Status": status("OK" if p["healthy"] else "Critical"),
        }
    watts = bmc.hw.power_watts()
    out["SystemBoardPwrConsumption"] = {
        "Name": "System Board Pwr Consumption",
        "Reading": watts,
        "ReadingType": "Power",
        "ReadingUnits": "W",
        "Thresholds": {"UpperCritical": {"Reading": POWER_LIMIT_W}},
        "Status": status("Warning" if watts > POWER_LIMIT_W else "OK"),
    }
    return out


def sensor(bmc: BMC, sid: str) -> dict[str, Any] | None:
    body = sensors(bmc).get(sid)
    if body is None:
        return None
    return resource("#Sensor.v1_8_0.Sensor", f"{CHA}/Sensors/{sid}", sid, body.pop("Name"), **body)


# --- managers, jobs, tasks -------------------------------------------------------------------------
def manager(bmc: BMC) -> dict[str, Any]:
    from clusterctl.sim import dell

    return resource(
        "#Manager.v1_18_0.Manager",
        MGR,
        "iDRAC.Embedded.1",
        "Manager",
        ManagerType="BMC",
        Manufacturer="Dell Inc.",
        Model="17G Monolithic",
        FirmwareVersion=bmc.firmware["idrac"],
        ServiceEntryPointUUID=SERVICE_UUID,
        UUID=SERVICE_UUID,
        PowerState="On",
        Status=status(),
        DateTime=bmc.clock.iso(),
        NetworkProtocol=ref(f"{MGR}/NetworkProtocol"),
        LogServices=ref(f"{MGR}/LogServices"),
        VirtualMedia=ref(f"{MGR}/VirtualMedia"),
        EthernetInterfaces=ref(f"{MGR}/EthernetInterfaces"),
        Links={
            "ManagerForServers": [ref(SYS)],
            "ManagerForChassis": [ref(CHA)],
            "Oem": {"Dell": dell.manager_oem_links()},
        },
        Actions={
            "#Manager.Reset": {
                "target": f"{MGR}/Actions/Manager.Reset",
                "ResetType@Redfish.AllowableValues": ["GracefulRestart"],
            },
            "Oem": dell.manager_actions(),
        },
    )


def network_protocol(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#ManagerNetworkProtocol.v1_9_0.ManagerNetworkProtocol",
        f"{MGR}/NetworkProtocol",
        "NetworkProtocol",
        "Manager Network Protocol",
        HostName=f"{bmc.hw.name}-bmc",
        HTTPS={"ProtocolEnabled": True, "Port": 443},
        HTTP={"ProtocolEnabled": False, "Port": 80},
        SSH={"ProtocolEnabled": True, "Port": 22},
        Status=status(),
    )


def job_body(bmc: BMC, job: Job, uri: str, dell: bool) -> dict[str, Any]:
    state, pct, message = job.state(bmc.clock.now())
    if dell:
        return resource(
            "#DellJob.v1_6_0.DellJob",
            uri,
            job.id,
            job.name,
            JobState=state,
            JobType=job.job_type,
            PercentComplete=pct,
            Message=message,
            MessageId={"Completed": "PR19", "RebootCompleted": "RED030"}.get(state, "JCP001"),
            MessageArgs=[],
            Description="Job Instance",
            ActualRunningStartTime=(bmc.clock.iso(job.start_at) if job.start_at is not None
                                    and bmc.clock.now() >= job.start_at else None),
            ActualRunningStopTime=(bmc.clock.iso(job.end_time) if job.end_time is not None else None),
            CompletionTime=(bmc.clock.iso(job.end_time) if job.end_time is not None else None),
            StartTime="TIME_NOW",
            EndTime="TIME_NA",
            TargetSettingsURI=None,
        )
    job_state = {"Downloading": "Running", "Scheduled": "Pending", "PendingActivation": "UserIntervention",
                 "CompletedWithErrors": "Exception", "RebootFailed": "Exception", "Failed": "Exception",
                 "RebootCompleted": "Completed"}.get(
        state, state
    )
    return resource(
        "#Job.v1_2_1.Job",
        uri,
        job.id,
        job.name,
        JobState=job_state,
        PercentComplete=pct,
        StartTime=bmc.clock.iso(job.created),
        Messages=[{"Message": message, "MessageId": "IDRAC.2.8.JCP001"}],
        JobStatus="Critical" if job_state == "Exception" else "OK",
    )


def _awaiting_activation(job: Job, state: str) -> list[dict[str, Any]]:
    """DMTF's word for a verified, staged image that waits for a reset (Update message registry)."""
    if job.job_type != "FirmwareUpdate" or state not in ("Scheduled", "PendingActivation"):
        return []
    action = "a reset" if state == "Scheduled" else "a virtual AC power cycle"
    return [{"MessageId": "Update.1.0.AwaitToActivate", "MessageArgs": [action, job.name],
             "Message": f"Awaiting for {action} to proceed with activating {job.name}."}]


def task(bmc: BMC, job: Job) -> dict[str, Any]:
    state, pct, message = job.state(bmc.clock.now())
    task_state = {"Completed": "Completed", "RebootCompleted": "Completed", "Failed": "Exception",
                  "CompletedWithErrors": "Exception", "RebootFailed": "Exception"}.get(state, "Running")
    return resource(
        "#Task.v1_7_1.Task",
        f"{V1}/TaskService/Tasks/{job.id}",
        job.id,
        "Task",
        Description="Server Configuration and other Tasks running on iDRAC are listed here",
        TaskState=task_state,
        TaskStatus="Critical" if task_state == "Exception" else "OK",
        PercentComplete=pct,
        StartTime=bmc.clock.iso(job.created),
        **({"EndTime": bmc.clock.iso(job.end_time)} if job.end_time is not None else {}),
        Messages=[
            {"Message": message, "MessageId": "IDRAC.2.8.RED007" if task_state == "Exception" else "IDRAC.2.8.JCP001"},
            *_awaiting_activation(job, state),
        ],
        TaskMonitor=f"{V1}/TaskService/TaskMonitors/{job.id}",
        Oem={
            "Dell": {
                "@odata.type": "#DellJob.v1_6_0.DellJob",
                "JobState": state,
                "JobType": job.job_type,
                "PercentComplete": pct,
                "Message": message,
                "Name": job.name,
            }
        },
    )


def update_service(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#UpdateService.v1_11_0.UpdateService",
        f"{V1}/UpdateService",
        "UpdateService",
        "Update Service",
        ServiceEnabled=True,
        Status=status(),
        FirmwareInventory=ref(f"{V1}/UpdateService/FirmwareInventory"),
        MultipartHttpPushUri=f"{V1}/UpdateService/MultipartUpload",
        Actions={
            "#UpdateService.SimpleUpdate": {
                "target": f"{V1}/UpdateService/Actions/UpdateService.SimpleUpdate",
                "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS", "NFS", "CIFS", "TFTP", "FTP"],
                "@Redfish.OperationApplyTimeSupport": {
                    "@odata.type": "#Settings.v1_3_5.OperationApplyTimeSupport",
                    "SupportedValues": ["Immediate", "OnReset"],
                },
            }
        },
    )


def firmware_item(bmc: BMC, fid: str) -> dict[str, Any] | None:
    for item in bmc.firmware_items():
        if item["id"] == fid:
            return resource(
                "#SoftwareInventory.v1_9_0.SoftwareInventory",
                f"{V1}/UpdateService/FirmwareInventory/{fid}",
                fid,
                item["name"],
                Version=item["version"],
                ReleaseDate="00:00:00Z",  # iDRAC's placeholder for a package without a release date
                Updateable=item["updateable"],
                SoftwareId=str(item["component_id"]),
                Status=status("OK", "Enabled" if item["state"] == "Installed" else "StandbyOffline"),
                Oem={
                    "Dell": {
                        "DellSoftwareInventory": {
                            "ComponentID": str(item["component_id"]),
                            "Status": item["state"],
                        }
                    }
                },
            )
    return None


def session_service(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#SessionService.v1_1_8.SessionService",
        f"{V1}/SessionService",
        "SessionService",
        "Session Service",
        ServiceEnabled=True,
        SessionTimeout=bmc.session_timeout,
        Status=status(),
        Sessions=ref(f"{V1}/SessionService/Sessions"),
    )


def session(bmc: BMC, sid: str) -> dict[str, Any] | None:
    s = bmc.sessions.get(sid)
    if s is None:
        return None
    return resource(
        "#Session.v1_6_0.Session",
        f"{V1}/SessionService/Sessions/{sid}",
        sid,
        "User Session",
        UserName=s.user,
        Password=None,
        CreatedTime=s.created,
        SessionType="Redfish",
    )


def log_service(bmc: BMC, base: str) -> dict[str, Any]:
    return resource(
        "#LogService.v1_4_0.LogService",
        f"{base}/LogServices/Sel",
        "Sel",
        "SEL Log Service",
        OverWritePolicy="WrapsWhenFull",
        MaxNumberOfRecords=1024,
        ServiceEnabled=True,
        LogEntryType="SEL",
        DateTime=bmc.clock.iso(),
        Status=status(),
        Entries=ref(f"{base}/LogServices/Sel/Entries"),
        Actions={"#LogService.ClearLog": {"target": f"{base}/LogServices/Sel/Actions/LogService.ClearLog"}},
    )


def sel_entry(bmc: BMC, base: str, eid: str) -> dict[str, Any] | None:
    for e in bmc.sel:
        if e["id"] == eid:
            return resource(
                "#LogEntry.v1_15_0.LogEntry",
                f"{base}/LogServices/Sel/Entries/{eid}",
                eid,
                "Log Entry",
                EntryType="SEL",
                Created=e["created"],
                Message=e["message"],
                MessageId=e["message_id"],
                Severity=e["severity"],
                SensorType=e["sensor"],
            )
    return None


def virtual_media(bmc: BMC, device: str) -> dict[str, Any] | None:
    slot = bmc.media.get(device)
    if slot is None:
        return None
    uri = f"{MGR}/VirtualMedia/{device}"
    types = ["CD", "DVD"] if device == "CD" else ["USBStick"]
    return resource(
        "#VirtualMedia.v1_6_0.VirtualMedia",
        uri,
        device,
        "Virtual " + device,
        MediaTypes=types,
        Image=slot["image"],
        Inserted=slot["inserted"],
        ConnectedVia=("URI" if slot["inserted"] else "NotConnected"),
        WriteProtected=True,
        Actions={
            "#VirtualMedia.InsertMedia": {"target": f"{uri}/Actions/VirtualMedia.InsertMedia"},
            "#VirtualMedia.EjectMedia": {"target": f"{uri}/Actions/VirtualMedia.EjectMedia"},
        },
    )


def account_service(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#AccountService.v1_13_0.AccountService",
        f"{V1}/AccountService",
        "AccountService",
        "Account Service",
        ServiceEnabled=True,
        MinPasswordLength=8,
        MaxPasswordLength=40,
        Accounts=ref(f"{V1}/AccountService/Accounts"),
        Roles=ref(f"{V1}/AccountService/Roles"),
        Status=status(),
    )


def account(bmc: BMC, aid: str) -> dict[str, Any] | None:
    acc = bmc.accounts.slots.get(int(aid)) if aid.isdigit() else None
    if acc is None:
        return None
    return resource(
        "#ManagerAccount.v1_10_0.ManagerAccount",
        f"{V1}/AccountService/Accounts/{aid}",
        aid,
        "User Account",
        Description="User Account",
        UserName=acc.user,
        RoleId=acc.role,
        Enabled=acc.enabled,
        Locked=acc.locked,
        PasswordChangeRequired=acc.password_change_required,
        Password=None,
        AccountTypes=["Redfish", "SNMP", "OEM", "HostConsole", "ManagerConsole", "IPMI", "KVMIP", "VirtualMedia",
                      "WebUI"],
        Links={"Role": ref(f"{V1}/AccountService/Roles/{acc.role}")} if acc.role != "None" else {},
    )


def role(bmc: BMC, rid: str) -> dict[str, Any] | None:
    privileges = {
        "Administrator": [
            "Login",
            "ConfigureManager",
            "ConfigureUsers",
            "ConfigureSelf",
            "ConfigureComponents",
        ],
        "Operator": ["Login", "ConfigureSelf", "ConfigureComponents"],
        "ReadOnly": ["Login", "ConfigureSelf"],
    }
    if rid not in privileges:
        return None
    return resource(
        "#Role.v1_3_1.Role",
        f"{V1}/AccountService/Roles/{rid}",
        rid,
        rid,
        RoleId=rid,
        IsPredefined=True,
        AssignedPrivileges=privileges[rid],
    )


def manager_nic(bmc: BMC, nid: str) -> dict[str, Any] | None:
    """The iDRAC's own dedicated port: static address on the BMC network, no VLAN."""
    if nid != "NIC.1":
        return None
    return resource(
        "#EthernetInterface.v1_6_0.EthernetInterface",
        f"{MGR}/EthernetInterfaces/NIC.1",
        "NIC.1",
        "Manager Ethernet Interface",
        Description="Management Network Interface",
        HostName=f"{bmc.hw.name}-bmc",
        FQDN=f"{bmc.hw.name}-bmc.lab",
        InterfaceEnabled=True,
        LinkStatus="LinkUp",
        MACAddress=f"B0:26:28:{bmc.hw.index // 65536 % 256:02X}:{bmc.hw.index // 256 % 256:02X}:"
                   f"{bmc.hw.index % 256:02X}",
        PermanentMACAddress=f"B0:26:28:{bmc.hw.index // 65536 % 256:02X}:{bmc.hw.index // 256 % 256:02X}:"
                            f"{bmc.hw.index % 256:02X}",
        SpeedMbps=1000,
        AutoNeg=True,
        FullDuplex=True,
        MTUSize=1500,
        NameServers=["10.0.0.53"],
        StaticNameServers=["10.0.0.53"],
        IPv4Addresses=[{"Address": bmc.address, "SubnetMask": "255.255.0.0", "Gateway": "127.1.0.0",
                        "AddressOrigin": "Static"}],
        IPv4StaticAddresses=[{"Address": bmc.address, "SubnetMask": "255.255.0.0", "Gateway": "127.1.0.0"}],
        IPv6Addresses=[],
        IPv6StaticAddresses=[],
        VLAN={"VLANEnable": False, "VLANId": 1, "VLANPriority": 0, "Tagged": False},
        Status=status(),
        Links={"Chassis": ref(CHA)},
    )


def lc_status(bmc: BMC) -> dict[str, Any]:
    bmc.settle()
    busy = not bmc.lc_ready() or any(
        not j.settled and j.start_at is not None and bmc.clock.now() >= j.start_at for j in bmc.jobs.values())
    server = {"On": "OutOfPOST", "PoweringOn": "InPOST", "Off": "PoweredOff", "PoweringOff": "OutOfPOST"}[
        bmc.power_state
    ]
    ready = "NotReady" if busy else "Ready"
    message = "Lifecycle Controller Remote Services is " + ("ready." if ready == "Ready" else "not ready.")
    return {
        "@Message.ExtendedInfo": [
            {
                "Message": message,
                "MessageId": "IDRAC.2.9.LC061" if ready == "Ready" else "IDRAC.2.9.LC060",
                "MessageArgs": [],
                "Severity": "Informational",
            }
        ],
        "LCStatus": ready,
        "RTStatus": ready,
        "ServerStatus": server,
        "Status": ready,
        "TelemetryStatus": "Ready",
    }
