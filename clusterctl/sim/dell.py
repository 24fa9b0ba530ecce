"""Dell OEM resources of a simulated iDRAC9: the job, Lifecycle Controller, iDRAC card and software
installation services, iDRAC attributes, Server Configuration Profiles, and the Dell sensor collections.

iDRAC9 serves its OEM services at two prefixes: `/redfish/v1/Dell/Managers/iDRAC.Embedded.1/<Service>`
(all 4.x-7.x firmware, what sushy-oem-idrac and badfish try first) and
`/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/<Service>` (newer firmware, what the Manager links);
the lab answers at both. Payloads follow Dell's Redfish API guide and dell/iDRAC-Redfish-Scripting
(DeleteJobQueue with JobID JID_CLEARALL, GetRemoteServicesAPIStatus, iDRACReset, SCP export to a
local share answered 202 with a task whose URI returns the profile once done).
"""

from __future__ import annotations

import json
from typing import Any

from clusterctl.sim.bmc import BIOS_DEFAULTS, BMC, Job
from clusterctl.sim.node import GPU_COUNT
from clusterctl.sim.refusal import ActionError
from clusterctl.sim.resources import MGR, SYS, V1, ref, resource

DELL_MGR = f"{V1}/Dell/Managers/iDRAC.Embedded.1"
OEM_MGR = f"{MGR}/Oem/Dell"
SERVICES = ("DellJobService", "DellLCService", "DelliDRACCardService", "DellSoftwareInstallationService")
SCP_TARGETS = ["ALL", "IDRAC", "BIOS", "NIC", "RAID"]
SHUTDOWN_TYPES = ["Graceful", "Forced", "NoReboot"]
BIOS_FQDD = "BIOS.Setup.1-1"
IDRAC_FQDD = "iDRAC.Embedded.1"


def service(name: str, base: str) -> dict[str, Any] | None:
    """One Dell OEM service resource with its actions, at `base` (either prefix)."""
    uri = f"{base}/{name}"
    actions: dict[str, dict[str, Any]] = {
        "DellJobService": {
            "#DellJobService.DeleteJobQueue": {"target": f"{uri}/Actions/DellJobService.DeleteJobQueue"},
            "#DellJobService.SetDefaultJobConfiguration": {
                "target": f"{uri}/Actions/DellJobService.SetDefaultJobConfiguration"
            },
        },
        "DellLCService": {
            "#DellLCService.GetRemoteServicesAPIStatus": {
                "target": f"{uri}/Actions/DellLCService.GetRemoteServicesAPIStatus"
            },
        },
        "DelliDRACCardService": {
            "#DelliDRACCardService.iDRACReset": {
                "target": f"{uri}/Actions/DelliDRACCardService.iDRACReset",
                "Force@Redfish.AllowableValues": ["Graceful", "Force"],
            },
        },
        "DellSoftwareInstallationService": {
            "#DellSoftwareInstallationService.InstallFromURI": {
                "target": f"{uri}/Actions/DellSoftwareInstallationService.InstallFromURI"
            },
        },
    }.get(name, {})
    if not actions:
        return None
    return resource(
        f"#{name}.v1_1_0.{name}",
        uri,
        name,
        name,
        Description=f"The {name} resource provides actions of the Dell {name[4:]}.",
        Actions=actions,
    )


# --- jobs ------------------------------------------------------------------------------------------
def delete_job_queue(bmc: BMC, body: dict[str, Any]) -> dict[str, Any]:
    """DeleteJobQueue: one job by Id, or every job and every pending setting (JID_CLEARALL[_FORCE])."""
    job_id = body.get("JobID")
    if not isinstance(job_id, str) or not job_id:
        raise ActionError(
            400, "Base.1.12.ActionParameterMissing",
            "The action DeleteJobQueue requires the parameter JobID to be present in the request body.",
            args=["JobID"],
        )
    if job_id in ("JID_CLEARALL", "JID_CLEARALL_FORCE"):
        bmc.jobs.clear()
        bmc.clear_pending_bios()
        bmc.journal.job_queue_cleared += 1
    else:
        if job_id not in bmc.jobs:
            raise ActionError(400, "IDRAC.2.8.SUP011", f"Job ID {job_id} is invalid.", args=[job_id])
        bmc.delete_job(job_id)
    return success("The specified job was deleted.", "IDRAC.2.8.SUP020")


def success(message: str, message_id: str = "Base.1.12.Success") -> dict[str, Any]:
    return {"@Message.ExtendedInfo": [{"Message": message, "MessageId": message_id, "MessageArgs": [],
                                       "Severity": "Informational"}]}


def idrac_reset(bmc: BMC, body: dict[str, Any]) -> dict[str, Any]:
    force = body.get("Force", "Graceful")
    if force not in ("Graceful", "Force"):
        raise ActionError(
            400, "Base.1.12.ActionParameterValueNotInList",
            f"The value '{force}' for the parameter Force is not in the list of acceptable values.",
            args=[str(force), "Force"],
        )
    bmc.reset_idrac()
    return success("iDRAC restart operation triggered successfully.", "IDRAC.2.8.RAC069")


# --- iDRAC attributes ----------------------------------------------------------------------------------
def attributes(bmc: BMC) -> dict[str, Any]:
    return resource(
        "#DellAttributes.v1_0_0.DellAttributes",
        f"{MGR}/Attributes",
        IDRAC_FQDD,
        "OEMAttributeRegistry",
        Description="This schema provides the oem attributes",
        AttributeRegistry="ManagerAttributeRegistry.v1_0_0",
        Attributes=dict(bmc.idrac_attributes),
    )


def patch_attributes(bmc: BMC, body: dict[str, Any]) -> None:
    attrs = body.get("Attributes")
    if not isinstance(attrs, dict) or not attrs:
        raise ActionError(400, "Base.1.12.PropertyMissing",
                          "The property Attributes is a required property and must be included in the request.",
                          args=["Attributes"])
    set_idrac_attributes(bmc, attrs)


def set_idrac_attributes(bmc: BMC, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        if key not in bmc.idrac_attributes:
            raise ActionError(400, "Base.1.12.PropertyUnknown",
                              f"The property {key} is not in the list of valid properties for the resource.",
                              args=[key])
        if not isinstance(value, str):
            raise ActionError(400, "Base.1.12.PropertyValueTypeError",
                              f"The value for the property {key} is of a different type than the property can "
                              "accept.", args=[key])
    bmc.idrac_attributes.update(attrs)


# --- Server Configuration Profile ------------------------------------------------------------------------
def scp_targets(body: dict[str, Any]) -> set[str]:
    """ShareParameters.Target as a string ("ALL", "BIOS,IDRAC": older firmware) or a list (6.x/7.x)."""
    share = body.get("ShareParameters")
    if not isinstance(share, dict):
        raise ActionError(400, "Base.1.12.ActionParameterMissing",
                          "The action requires the parameter ShareParameters to be present in the request body.",
                          args=["ShareParameters"])
    target = share.get("Target", "ALL")
    items = target.split(",") if isinstance(target, str) else target
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise ActionError(400, "Base.1.12.ActionParameterValueTypeError",
                          "The value for the parameter Target is of a different type than expected.", args=["Target"])
    targets = {t.strip().upper() for t in items}
    bad = sorted(targets - set(SCP_TARGETS))
    if bad:
        raise ActionError(400, "Base.1.12.ActionParameterValueNotInList",
                          f"The value '{bad[0]}' for the parameter Target is not in the list of acceptable values.",
                          args=[bad[0], "Target"])
    share_type = share.get("ShareType", "Local")
    if str(share_type).upper() != "LOCAL":
        raise ActionError(400, "IDRAC.2.8.SYS045",
                          "The lab's iDRAC exports and imports profiles through the local share only.",
                          args=[str(share_type)])
    return {"BIOS", "IDRAC"} if "ALL" in targets else targets


def profile(bmc: BMC, targets: set[str]) -> dict[str, Any]:
    """The profile an export writes: one component per modelled target, every attribute "Set On Import"."""
    def attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"Name": k, "Value": str(v), "Set On Import": "True", "Comment": "Read and Write"}
                for k, v in values.items()]

    components = []
    if "BIOS" in targets:
        components.append({"FQDD": BIOS_FQDD, "Attributes": attrs(bmc.bios)})
    if "IDRAC" in targets:
        components.append({"FQDD": IDRAC_FQDD, "Attributes": attrs(bmc.idrac_attributes)})
    return {
        "SystemConfiguration": {
            "Model": "PowerEdge XE9680",
            "ServiceTag": bmc.hw.service_tag,
            "TimeStamp": bmc.clock.iso(),
            "Comments": [{"Comment": "Export type is Normal,JSON,Selective"}],
            "Components": components,
        }
    }


def export_scp(bmc: BMC, body: dict[str, Any]) -> Job:
    targets = scp_targets(body)
    fmt = body.get("ExportFormat", "XML")
    if fmt != "JSON":
        raise ActionError(400, "Base.1.12.ActionParameterValueNotInList",
                          f"The value '{fmt}' for the parameter ExportFormat is not supported by the lab "
                          "(JSON only).", args=[str(fmt), "ExportFormat"])
    job = bmc.config_job("ExportConfiguration", "Export: Server Configuration Profile")
    job.payload = json.dumps(profile(bmc, targets))
    return job


def import_scp(bmc: BMC, body: dict[str, Any]) -> Job:
    bmc.require_lc()  # before anything is staged: a refused import changes nothing
    targets = scp_targets(body)
    raw = body.get("ImportBuffer")
    if not isinstance(raw, str) or not raw.strip():
        raise ActionError(400, "Base.1.12.ActionParameterMissing",
                          "The action requires the parameter ImportBuffer to be present in the request body.",
                          args=["ImportBuffer"])
    shutdown = body.get("ShutdownType", "Graceful")
    if shutdown not in SHUTDOWN_TYPES:
        raise ActionError(400, "Base.1.12.ActionParameterValueNotInList",
                          f"The value '{shutdown}' for the parameter ShutdownType is not in the list of acceptable "
                          "values.", args=[str(shutdown), "ShutdownType"])
    try:
        components = json.loads(raw)["SystemConfiguration"]["Components"]
        changes = {c["FQDD"]: {a["Name"]: a["Value"] for a in c.get("Attributes", [])
                               if a.get("Set On Import", "True") == "True"} for c in components}
    except (ValueError, KeyError, TypeError):
        raise ActionError(400, "IDRAC.2.8.SYS041",
                          "The lab reads JSON profiles only: the ImportBuffer is not a JSON SystemConfiguration.") \
            from None
    bios = {k: _typed(k, v) for k, v in changes.get(BIOS_FQDD, {}).items()} if "BIOS" in targets else {}
    bios = {k: v for k, v in bios.items() if bmc.bios.get(k) != v}
    idrac = changes.get(IDRAC_FQDD, {}) if "IDRAC" in targets else {}
    if idrac:
        set_idrac_attributes(bmc, idrac)
    if bios:
        bmc.set_bios_pending(bios)
    job = bmc.config_job("ImportConfiguration", "Import Configuration", staged=bool(bios))
    if bios and shutdown != "NoReboot" and bmc.power_state != "Off":
        bmc.reset("GracefulRestart" if shutdown == "Graceful" else "ForceRestart")
    return job


def _typed(name: str, value: Any) -> Any:
    """A profile carries every value as a string; the BIOS model keeps integers as integers."""
    if isinstance(BIOS_DEFAULTS.get(name), int) and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def manager_actions() -> dict[str, Any]:
    """The Manager's `Actions.Oem` block: SCP export/import as iDRAC9 publishes them."""
    share = {
        "ShareType@Redfish.AllowableValues": ["Local", "NFS", "CIFS", "HTTP", "HTTPS"],
        "Target@Redfish.AllowableValues": SCP_TARGETS,
        "IgnoreCertificateWarning@Redfish.AllowableValues": ["Disabled", "Enabled"],
    }
    base = f"{MGR}/Actions/Oem/EID_674_Manager"
    return {
        "#OemManager.v1_4_0.OemManager#OemManager.ExportSystemConfiguration": {
            "target": f"{base}.ExportSystemConfiguration",
            "ExportFormat@Redfish.AllowableValues": ["XML", "JSON"],
            "ExportUse@Redfish.AllowableValues": ["Default", "Clone", "Replace"],
            "IncludeInExport@Redfish.AllowableValues": ["Default", "IncludeReadOnly", "IncludePasswordHashValues",
                                                        "IncludeCustomTelemetry"],
            "ShareParameters": share,
        },
        "#OemManager.v1_4_0.OemManager#OemManager.ImportSystemConfiguration": {
            "target": f"{base}.ImportSystemConfiguration",
            "HostPowerState@Redfish.AllowableValues": ["On", "Off"],
            "ShutdownType@Redfish.AllowableValues": SHUTDOWN_TYPES,
            "ShareParameters": share,
        },
    }


# --- sensors ---------------------------------------------------------------------------------------------
def gpu_sensor_ids(bmc: BMC) -> list[str]:
    return [f"Video.Slot.{i + 1}-1" for i in range(GPU_COUNT) if bmc.hw.gpu_present(i)]


def gpu_sensor(bmc: BMC, sid: str) -> dict[str, Any] | None:
    """DellGPUSensor of an HGX GPU (iDRAC9 7.x on XE9680): temperatures and the board's alert states."""
    if sid not in gpu_sensor_ids(bmc):
        return None
    i = int(sid.split(".")[2].split("-")[0]) - 1
    temp = bmc.hw.gpu_temp_c(i)
    hot = any(p["gpu"] == i for p in bmc.hw.faults_of("thermal_throttle"))
    return resource(
        "#DellGPUSensor.v1_0_0.DellGPUSensor",
        f"{SYS}/Oem/Dell/DellGPUSensors/{sid}",
        sid,
        f"GPU {i + 1} Sensor",
        PrimaryGPUTemperatureCelsius=temp,
        MemoryTemperatureCelsius=round(temp + 4.0, 1),
        BoardPowerSupplyStatus="Normal",
        PowerBrakeStatus="Released",
        ThermalAlertStatus="Warning" if hot else "Normal",
        GPUHealth="Critical" if any(p["gpu"] == i for p in bmc.hw.faults_of("xid")) else "OK",
    )


def numeric_sensors(bmc: BMC) -> dict[str, dict[str, Any]]:
    """DellNumericSensor by Id: what the Chassis's Sensors hold, in Dell's shape (CurrentReading, units)."""
    from clusterctl.sim.resources import sensors

    kinds = {"Temperature": ("Temperature", "DegreesC"), "Rotational": ("Tachometer", "RPM"), "Power": ("Watts", "W")}
    out = {}
    for sid, s in sensors(bmc).items():
        sensor_type, unit = kinds.get(s["ReadingType"], (s["ReadingType"], s["ReadingUnits"]))
        out[sid] = {
            "ElementName": s["Name"],
            "CurrentReading": s["Reading"],
            "SensorType": sensor_type,
            "BaseUnits": unit,
            "HealthState": s["Status"]["Health"],
            "EnabledState": "Enabled",
            "CurrentState": "Normal" if s["Status"]["Health"] == "OK" else s["Status"]["Health"],
        }
    return out


def numeric_sensor(bmc: BMC, sid: str) -> dict[str, Any] | None:
    body = numeric_sensors(bmc).get(sid)
    if body is None:
        return None
    return resource("#DellNumericSensor.v1_0_0.DellNumericSensor", f"{SYS}/Oem/Dell/DellNumericSensors/{sid}", sid,
                    body["ElementName"], **body)


def system_oem_links() -> dict[str, Any]:
    return {
        "DellGPUSensorCollection": ref(f"{SYS}/Oem/Dell/DellGPUSensors"),
        "DellNumericSensorCollection": ref(f"{SYS}/Oem/Dell/DellNumericSensors"),
        "DellBootSources": ref(f"{SYS}/Oem/Dell/DellBootSources"),
    }


def manager_oem_links() -> dict[str, Any]:
    return {
        **{name: ref(f"{OEM_MGR}/{name}") for name in SERVICES},
        "Jobs": ref(f"{OEM_MGR}/Jobs"),
        "DellAttributes": [ref(f"{MGR}/Attributes")],
    }

