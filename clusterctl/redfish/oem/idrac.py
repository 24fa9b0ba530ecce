"""Dell iDRAC9 extensions: the Lifecycle Controller job queue, LC readiness, BIOS configuration
jobs and Server Configuration Profile (SCP) export/import.

Only code that knows it talks to an iDRAC imports this; the generic resources never do.
URIs and payload shapes follow Dell's iDRAC9 Redfish API guide and dell/iDRAC-Redfish-Scripting:
  - jobs:      /redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/Jobs/<JID> (DellJob: JobState,
               PercentComplete, Message, MessageId); config jobs are created by
               POST .../iDRAC.Embedded.1/Jobs with TargetSettingsURI, answered with the job URI in Location;
  - LC status: DellLCService.GetRemoteServicesAPIStatus (POST {}) -> LCStatus/RTStatus/Status "Ready",
               ServerStatus (OutOfPOST, InPOST, PoweredOff, ...); older firmware: under /redfish/v1/Dell/;
  - SCP:       Actions/Oem/EID_674_Manager.{Export,Import}SystemConfiguration, answered 202 + a task/job
               Location; a local export returns the profile itself from the task URI once complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from clusterctl import log
from clusterctl.errors import BMCRequestFailed, BMCUnreachable, ClusterctlError, TaskFailed
from clusterctl.redfish.cadence import Cadence, Wait
from clusterctl.redfish.client import RedfishClient
from clusterctl.redfish.resources.bios import Bios, diff, stage_attributes
from clusterctl.redfish.resources.chassis import power_cycle_chassis
from clusterctl.redfish.resources.common import RedfishModel
from clusterctl.redfish.resources.tasks import task_location, wait_task

_log = log.get("redfish.idrac")

MANAGER = "/redfish/v1/Managers/iDRAC.Embedded.1"
JOBS = f"{MANAGER}/Oem/Dell/Jobs"
CREATE_JOB = f"{MANAGER}/Jobs"
LC_STATUS_URIS = (
    f"{MANAGER}/Oem/Dell/DellLCService/Actions/DellLCService.GetRemoteServicesAPIStatus",
    "/redfish/v1/Dell/Managers/iDRAC.Embedded.1/DellLCService/Actions/DellLCService.GetRemoteServicesAPIStatus",
)
SCP_ACTIONS = f"{MANAGER}/Actions/Oem"
DELETE_JOB_QUEUE = f"{MANAGER}/Oem/Dell/DellJobService/Actions/DellJobService.DeleteJobQueue"

# The JobState values of Dell's DellJob schema, as OpenStack sushy's Dell OEM module lists them (JobState in
# https://docs.openstack.org/sushy/2026.1/reference/api/sushy.oem.dell.resources.taskservice.html).
# Left out on purpose: RebootCompleted ends reboot jobs, which are never waited on here, and Unknown,
# which is waited out like a running job until the deadline.
JOB_DONE = frozenset({"Completed"})
JOB_FAILED = frozenset({"Failed", "CompletedWithErrors", "RebootFailed"})
JOB_AWAITS_AC_CYCLE = frozenset({"PendingActivation"})
"""Applied but not yet running: HGX baseboard and CPLD firmware wait for a virtual AC power cycle."""
JOB_SCHEDULED = frozenset({"Scheduled"})
"""Where a configuration or staged firmware job waits for the host's reboot: a caller that reboots
later stops waiting there."""
JOB_IN_FLIGHT = frozenset({"New", "Scheduling", "Scheduled", "Downloading", "Downloaded", "ReadyForExecution",
                           "Waiting", "Running", "Paused", "PendingActivation", "RebootPending"})
"""Not ended yet: the job still carries its change, so a resumed run follows it rather than queue another."""


class DellJob(RedfishModel):
    id: str | None = Field(default=None, alias="Id")
    name: str | None = Field(default=None, alias="Name")
    job_type: str | None = Field(default=None, alias="JobType")
    job_state: str | None = Field(default=None, alias="JobState")
    percent: int | None = Field(default=None, alias="PercentComplete")
    message: str | None = Field(default=None, alias="Message")
    message_id: str | None = Field(default=None, alias="MessageId")
    start_time: str | None = Field(default=None, alias="StartTime")
    end_time: str | None = Field(default=None, alias="EndTime")
    completion_time: str | None = Field(default=None, alias="CompletionTime")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.job_type,
            "state": self.job_state,
            "percent": self.percent,
            "message_id": self.message_id,
            "message": self.message,
        }


class LCStatus(RedfishModel):
    lc_status: str | None = Field(default=None, alias="LCStatus")
    rt_status: str | None = Field(default=None, alias="RTStatus")
    server_status: str | None = Field(default=None, alias="ServerStatus")
    status: str | None = Field(default=None, alias="Status")

    @property
    def ready(self) -> bool:
        """Jobs are accepted only when the LC and the real-time service are both Ready."""
        return self.lc_status == "Ready" and self.rt_status == "Ready" and self.status in (None, "Ready")


def job_id_from(location: str) -> str:
    """`JID_...` from a job or task URI (iDRAC answers either form)."""
    return location.rstrip("/").rsplit("/", 1)[-1]


async def jobs(client: RedfishClient, *, limit: int = 200) -> list[DellJob]:
    """The job queue in one request where `$expand` is served (Dell's job scripts read it so): after a
    firmware pass an iDRAC lists a job per component, one GET each otherwise."""
    return [DellJob.model_validate(m) for m in await client.members(JOBS, limit=limit, expand=True)]


async def jobs_in_flight(client: RedfishClient, job_type: str) -> dict[str, DellJob]:
    """{JID: job} of the `job_type` jobs (FirmwareUpdate, BIOSConfiguration...) the iDRAC holds unfinished."""
    return {j.id: j for j in await jobs(client) if j.id and j.job_type == job_type and j.job_state in JOB_IN_FLIGHT}


def is_config_job(job: DellJob) -> bool:
    """A BIOS configuration job, an SCP import or a reboot job: what a pending BIOS change is made of
    on an iDRAC."""
    return job.job_type in ("BIOSConfiguration", "ImportConfiguration") or (job.job_type or "").startswith("Reboot")


async def delete_job(client: RedfishClient, job_id: str) -> None:
    """DellJobService.DeleteJobQueue for one job. `JID_CLEARALL` would also take jobs this run did not
    look at (a RAID or NIC change someone queued), so only named jobs are deleted."""
    await client.post(DELETE_JOB_QUEUE, {"JobID": job_id})


async def config_jobs_in_flight(client: RedfishClient) -> list[str]:
    """The JIDs of unfinished BIOS, SCP-import and reboot jobs, in the iDRAC's order."""
    return [j.id for j in await jobs(client) if j.id and j.job_state in JOB_IN_FLIGHT and is_config_job(j)]


async def clear_stale_config_jobs(client: RedfishClient, keep: str | None = None) -> list[str]:
    """Delete the pending BIOS and reboot jobs other than `keep` (the one this run's journal recorded).

    The iDRAC allows one pending BIOS job, and a stale one (a killed run's, or an operator's) would
    apply its own attributes at the next reboot: adopting it would pass a node whose settings nobody
    chose. Its attributes are staged again instead, with a job this run owns.
    """
    stale = [job_id for job_id in await config_jobs_in_flight(client) if job_id != keep]
    for job_id in stale:
        _log.info("%s: deleting stale job %s", client.name, job_id)
        await delete_job(client, job_id)
    return stale


async def job(client: RedfishClient, job_id: str) -> DellJob:
    return DellJob.model_validate(await client.get(f"{JOBS}/{job_id}"))


async def wait_job(
    client: RedfishClient,
    job_id: str,
    *,
    deadline_s: float = 1200.0,  # OpenManage's idrac_bios default; SCP imports with reboots need more
    poll: float | Cadence = 10.0,
    stop_at: Literal["completed", "scheduled"] = "completed",
) -> DellJob:
    """Poll the job until it completes (or is scheduled), or waits for an AC power cycle, which no
    amount of waiting brings (the caller checks `JOB_AWAITS_AC_CYCLE`); the iDRAC may reset
    meanwhile, so unreachable polls are waited out until the deadline."""
    wait = Wait(poll, deadline_s)
    done = JOB_DONE | JOB_AWAITS_AC_CYCLE | (JOB_SCHEDULED if stop_at == "scheduled" else set())
    last: DellJob | None = None
    while True:
        resp = await client.look(f"{JOBS}/{job_id}")
        if resp is None:
            _log.info("%s: job %s: iDRAC unreachable or busy, still waiting", client.name, job_id)
        else:
            last = DellJob.model_validate(resp.json())
        if last is not None:
            if last.job_state in JOB_FAILED:
                raise TaskFailed(
                    f"job {job_id} {last.job_state}: {last.message_id or ''} {last.message or ''}".strip(),
                    bmc=client.name,
                )
            if last.job_state in done:
                wait.done()
                return last
        if not await wait.sleep():
            state = last.job_state if last else "unknown"
            raise TaskFailed(f"job {job_id} still {state} after {deadline_s:.0f} s", bmc=client.name)


async def lc_status(client: RedfishClient) -> LCStatus:
    last_error: BMCRequestFailed | None = None
    for uri in LC_STATUS_URIS:
        try:
            resp = await client.post(uri, {})
        except BMCRequestFailed as exc:
            if exc.status in (404, 405):
                last_error = exc
                continue
            raise
        return LCStatus.model_validate(resp.json())
    assert last_error is not None
    raise last_error


async def wait_lc_ready(client: RedfishClient, *, deadline_s: float = 600.0,
                        poll: float | Cadence = 15.0) -> LCStatus:
    """Before any job: the LC refuses work while it is collecting inventory after a reboot."""
    wait = Wait(poll, deadline_s)
    while True:
        status: LCStatus | None = None
        try:
            status = await lc_status(client)
            if status.ready:
                wait.done()
                return status
        except BMCUnreachable:
            pass
        if not await wait.sleep():
            what = f"LC {status.lc_status}, RT {status.rt_status}" if status else "unreachable"
            raise TaskFailed(f"Lifecycle Controller not ready after {deadline_s:.0f} s ({what})", bmc=client.name)


async def create_config_job(client: RedfishClient, settings_uri: str, *, reboot: bool = False) -> str:
    """Queue a configuration job for staged settings; returns its JID."""
    body: dict[str, Any] = {"TargetSettingsURI": settings_uri}
    if reboot:
        body["RebootJobType"] = "GracefulRebootWithForcedShutdown"
    resp = await client.post(CREATE_JOB, body)
    location = resp.headers.get("Location")
    if not location:
        raise BMCRequestFailed("job creation answered without a Location", bmc=client.name, status=resp.status_code)
    return job_id_from(location)


async def configure_bios(
    client: RedfishClient,
    bios: Bios,
    desired: dict[str, Any],
    *,
    deadline_s: float = 600.0,
    poll: float | Cadence = 15.0,
    reboot: bool = False,
    via: Literal["settings", "scp"] = "settings",
) -> tuple[dict[str, Any], str | None, list[str]]:
    """Clear stale pending BIOS and reboot jobs, then queue the attributes that differ from `bios` for
    the next reboot: staged in the BIOS settings with a configuration job, or (`via="scp"`) as one
    SCP import that waits for the reboot; (change, JID, deleted JIDs), or ({}, None, deleted) when
    nothing differs."""
    await wait_lc_ready(client, deadline_s=deadline_s, poll=poll)
    deleted = await clear_stale_config_jobs(client)
    if via == "scp":
        change = diff(bios.attributes, desired)
        if not change:
            return {}, None, deleted
        return change, await import_scp(client, bios_profile(change), components=["BIOS"],
                                        shutdown="NoReboot"), deleted
    change = await stage_attributes(client, bios, desired)
    if not change:
        return {}, None, deleted
    job_id = await create_config_job(client, bios.settings_uri() or f"{bios.odata_id}/Settings", reboot=reboot)
    return change, job_id, deleted


def bios_profile(attributes: dict[str, Any]) -> dict[str, Any]:
    """A Server Configuration Profile holding only these BIOS attributes (SCP carries every value as
    text). Sites apply BIOS this way when the iDRAC should order dependent attributes itself, as it
    does within one profile."""
    return {"SystemConfiguration": {"Components": [{
        "FQDD": "BIOS.Setup.1-1",
        "Attributes": [{"Name": k, "Value": str(v), "Set On Import": "True"} for k, v in attributes.items()],
    }]}}


CHASSIS = "/redfish/v1/Chassis/System.Embedded.1"


async def ac_power_cycle(client: RedfishClient, chassis_uri: str = CHASSIS) -> str:
    """A virtual AC power cycle: what HGX baseboard and CPLD firmware need to take effect.

    Dell's `DellOemChassis.ExtendedReset` (iDRAC 7.00.06 and later) drains flea power like pulling
    the cords and powers the server back on (FinalPowerState On); it takes a server that is off.
    Older iDRACs (6.10 and later) have only DMTF's `Chassis.Reset` PowerCycle, which Dell says
    leaves flea power: a component still behind after it fails with that reason. Both per Dell's
    ServerVirtualAcPowerCycleREDFISH.py. Returns the action sent.
    """
    chassis = await client.get(chassis_uri)
    for key, action in ((chassis.get("Actions") or {}).get("Oem") or {}).items():
        if key.endswith("ExtendedReset") and isinstance(action, dict) and action.get("target"):
            await client.post(str(action["target"]), {"ResetType": "PowerCycle", "FinalPowerState": "On"})
            return "DellOemChassis.ExtendedReset"
    return await power_cycle_chassis(client, chassis_uri)


SCP_COMPONENTS = ("ALL", "IDRAC", "BIOS", "NIC", "RAID", "FC", "InfiniBand", "SupportAssist", "EventFilters",
                  "System", "LifecycleController", "AHCI", "PCIeSSD")
"""ShareParameters.Target values of Dell's ExportSystemConfiguration/ImportSystemConfiguration."""


class SCPError(ClusterctlError):
    """An SCP request this client will not send (an unknown component)."""


def scp_components(components: Sequence[str]) -> list[str]:
    """The components as given, each one Dell's SCP knows: checked before any request is sent."""
    unknown = [c for c in components if c not in SCP_COMPONENTS]
    if unknown or not components:
        raise SCPError(f"SCP components {', '.join(unknown) or '(none)'}: choose from {', '.join(SCP_COMPONENTS)}")
    return list(components)


def share_target(components: Sequence[str], firmware: str | None) -> list[str] | str:
    """ShareParameters.Target in the form the iDRAC's firmware takes: a list from 6.00 on (Dell's
    SCP scripts send ["ALL"] there), one comma-separated string before."""
    components = scp_components(components)
    major = (firmware or "").split(".", 1)[0]
    if major.isdigit() and int(major) >= 6:
        return list(components)
    return ",".join(components)


async def _scp_action(client: RedfishClient, name: str) -> tuple[str, str | None]:
    """The SCP action URI as the manager advertises it (the OEM action key differs across versions),
    and the iDRAC's firmware version, which decides the request's shape."""
    manager = await client.get(MANAGER)
    firmware = manager.get("FirmwareVersion")
    oem_actions = (manager.get("Actions") or {}).get("Oem") or {}
    for key, action in oem_actions.items():
        if key.endswith(f".{name}") and isinstance(action, dict) and action.get("target"):
            return str(action["target"]), firmware
    return f"{SCP_ACTIONS}/EID_674_Manager.{name}", firmware


async def export_scp(client: RedfishClient, *, components: Sequence[str] = ("ALL",),
                     fmt: Literal["JSON", "XML"] = "JSON") -> str:
    """Start a local SCP export; returns the task URI to wait on (its final body is the profile)."""
    uri, firmware = await _scp_action(client, "ExportSystemConfiguration")
    resp = await client.post(uri, {"ExportFormat": fmt,
                                   "ShareParameters": {"Target": share_target(components, firmware)}})
    location = task_location(resp)
    if not location:
        raise BMCRequestFailed("SCP export answered without a task", bmc=client.name, status=resp.status_code)
    return location


async def export_scp_and_wait(
    client: RedfishClient, *, components: Sequence[str] = ("ALL",), deadline_s: float = 600.0,
    poll: float | Cadence = 5.0,
) -> dict[str, Any]:
    location = await export_scp(client, components=components, fmt="JSON")
    return await wait_task(client, location, deadline_s=deadline_s, poll=poll)


async def import_scp(
    client: RedfishClient,
    profile: dict[str, Any] | str,
    *,
    components: Sequence[str] = ("ALL",),
    shutdown: Literal["Graceful", "Forced", "NoReboot"] = "Graceful",
    host_power: Literal["On", "Off"] = "On",
) -> str:
    """Start an SCP import from a profile held here; returns the job ID to wait on with `wait_job`."""
    uri, firmware = await _scp_action(client, "ImportSystemConfiguration")
    buffer = profile if isinstance(profile, str) else json.dumps(profile)
    resp = await client.post(
        uri,
        {
            "ImportBuffer": buffer,
            "ShareParameters": {"Target": share_target(components, firmware)},
            "ShutdownType": shutdown,
            "HostPowerState": host_power,
        },
    )
    location = task_location(resp) or resp.headers.get("Location")
    if not location:
        raise BMCRequestFailed("SCP import answered without a job", bmc=client.name, status=resp.status_code)
    return job_id_from(location)


async def import_scp_and_wait(
    client: RedfishClient,
    profile: dict[str, Any] | str,
    *,
    components: Sequence[str] = ("ALL",),
    shutdown: Literal["Graceful", "Forced", "NoReboot"] = "Graceful",
    deadline_s: float = 1800.0,
    poll: float | Cadence = 10.0,
) -> DellJob:
    """An import is a job like any other: the LC must be ready before it, and it ends at the job's end
    (a reboot, when the shutdown type allows one, happens inside it)."""
    await wait_lc_ready(client, deadline_s=deadline_s, poll=poll)
    job_id = await import_scp(client, profile, components=components, shutdown=shutdown)
    return await wait_job(client, job_id, deadline_s=deadline_s, poll=poll)
