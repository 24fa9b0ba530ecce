"""The state of one simulated iDRAC9: sessions, power, firmware, jobs and tasks, BIOS, SEL, journal.

Everything that takes time carries deadlines in simulated seconds and is settled by
`settle()` when a request touches this BMC, so nothing ticks in the background.
The behaviour follows iDRAC9 where clients depend on it:
- firmware images other than iDRAC's are staged (SimpleUpdate, which the lab does not fetch, or
  multipart push, whose bytes are hashed into the journal) and applied at the next
  reset (job `Scheduled` until then) unless `@Redfish.OperationApplyTime` is `Immediate`,
  which reboots the server itself; an iDRAC image applies at once and then the iDRAC
  resets: it stops answering for a while and every session is lost;
- BIOS settings stay pending until a BIOS configuration job exists (POST to
  Managers/iDRAC.Embedded.1/Jobs, or `@Redfish.SettingsApplyTime` in the PATCH) and the
  server reboots; a reboot without a job leaves them pending;
- the session table holds few sessions (8); more fail with RAC0218 and HTTP 503.

Firmware images are recognised by file name: `<component>[-_]<version>.<ext>`, with
component one of bios, idrac, nic, gpu, psu, cpld and ext exe/bin/d9/pldm/fwpkg,
e.g. `https://repo/fw/BIOS_1.6.2.EXE`.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clusterctl.sim.accounts import Accounts
from clusterctl.sim.clock import SimClock
from clusterctl.sim.inventory import LAB_OS, LAB_OS_IMAGE
from clusterctl.sim.node import GPU_COUNT, IB_PORTS, PSU_COUNT, NodeHardware
from clusterctl.sim.refusal import ActionError

MAX_SESSIONS = 8
SESSION_TIMEOUT_S = 1800  # iDRAC default idle timeout, in real seconds

# Simulated durations in seconds.
DOWNLOAD_S = 20.0
PUSH_VERIFY_S = 5.0  # a pushed image is already on the iDRAC: only verified
POST_S = 150.0
SHUTDOWN_S = 20.0
BIOS_JOB_S = 60.0
IDRAC_RESET_S = 120.0
SCP_S = 15.0  # an export or an import without BIOS changes
AC_CYCLE_S = 60.0  # flea power drained, then standby power back
LC_SETTLE_S = 300.0  # after the iDRAC restarts, its Lifecycle Controller collects inventory for minutes
LC_SETTLE_REAL_S = 2.0
LC_NOT_READY = "Lifecycle controller is currently not ready to take provisioning requests."
HANG_PERCENT = 42
INSTALL_S = 300.0  # an unattended install from the ISO (a short one: the demo runs it on 16 servers)
# The lab's image share, as a site's HTTP server holding installer ISOs: image URL -> the OS it installs.
# The share is modelled inside the lab (nothing listens at its host): a BMC resolves a virtual media URL
# against it as an iDRAC's Remote File Share connects to the server on InsertMedia, and refuses an image
# it cannot reach with RAC0720, the message racadm gives for a wrong path or an unreachable share
# (dell/iDRAC-Redfish-Scripting issue 265).
OS_IMAGES = {LAB_OS_IMAGE: LAB_OS}
RAC0720 = ("Unable to locate the ISO or IMG image file or folder in the network share location because the file "
           "path or the user credentials entered may be incorrect.")
# Dell's reboot jobs (RID_...), by the RebootJobType a configuration job was created with, and the
# ComputerSystem.Reset each one performs.
REBOOT_JOBS = {
    "RebootPowerCycle": "ForceRestart",
    "RebootForce": "ForceRestart",
    "RebootNoForce": "GracefulRestart",
}
REBOOT_JOB_TYPES = {
    "PowerCycle": "RebootPowerCycle",
    "GracefulRebootWithForcedShutdown": "RebootForce",
    "GracefulRebootWithoutForcedShutdown": "RebootNoForce",
}
# Configuration jobs that wait for the host's reboot, as a BIOS configuration job does.
CONFIG_JOBS = ("BIOSConfiguration", "ImportConfiguration")
# Components whose new firmware takes effect only after a virtual AC cycle (DellOemChassis.ExtendedReset):
# the HGX baseboard (GPU tray) and the CPLD (Dell KB 000355295, XE9680 release notes).
AC_CYCLE_COMPONENTS: tuple[str, ...] = ("gpu", "cpld")
AC_CYCLE_MESSAGE = "The firmware update completed; a virtual AC power cycle is required to activate it."

# component -> (name, ComponentId, initial version, apply seconds, per-device count). Initial
# versions are older than the lab inventory's targets except the PSU's, so a firmware pass has
# work to do and one component to skip.
COMPONENTS: dict[str, tuple[str, int, str, float, int]] = {
    "bios": ("BIOS", 159, "2.2.8", 180.0, 1),
    "idrac": ("Integrated Dell Remote Access Controller", 25227, "7.00.30.00", 240.0, 1),
    "nic": ("Mellanox ConnectX-7 Single Port VPI NDR OSFP Adapter", 109110, "28.39.1002", 120.0, IB_PORTS),
    "gpu": ("NVIDIA HGX-H100 SXM5 80GB GPU", 112233, "23.10.2", 300.0, GPU_COUNT),
    "psu": ("PSU Power Supply", 37845, "00.1D.7D", 240.0, PSU_COUNT),
    "cpld": ("System CPLD", 27763, "1.1.1", 120.0, 1),
}
# Names an image may give its component (file name prefix, or `component=` in a lab image).
COMPONENT_ALIASES = {
    "bios": "bios",
    "idrac": "idrac",
    "nic": "nic",
    "connectx-7": "nic",
    "cx7": "nic",
    "gpu": "gpu",
    "hgx-h100": "gpu",
    "hgx": "gpu",
    "psu": "psu",
    "cpld": "cpld",
}
IMAGE_RE = re.compile(
    r"(?i)(connectx-7|hgx-h100|bios|idrac|nic|cx7|hgx|gpu|psu|cpld)[-_]v?(\d[0-9A-Za-z.\-]*?)"
    r"\.(exe|bin|d9|pldm|fwpkg)$"
)
LAB_IMAGE_RE = re.compile(rb"component=([^\n]+)\nversion=([^\n]+)")


def identify_image(name: str, content: bytes | None = None) -> tuple[str, str] | None:
    """(component, version) of an image: from a lab image's content, else from its file name."""
    if content is not None:
        found = LAB_IMAGE_RE.search(content[:4096])
        if found:
            key = COMPONENT_ALIASES.get(found.group(1).decode(errors="replace").strip().lower())
            return (key, found.group(2).decode(errors="replace").strip()) if key else None
    match = IMAGE_RE.search(name)
    if match is None:
        return None
    return COMPONENT_ALIASES[match.group(1).lower()], match.group(2)


BIOS_DEFAULTS: dict[str, Any] = {
    "BootMode": "Uefi",
    "SysProfile": "PerfOptimized",
    "ProcVirtualization": "Enabled",
    "LogicalProc": "Enabled",
    "ProcCStates": "Disabled",
    "SriovGlobalEnable": "Disabled",
    "MemTest": "Disabled",
    "NumaNodesPerSocket": "1",
    "NodeInterleave": "Enabled",
    "PcieAspmL1": "Disabled",
    "ProcTurboMode": "Enabled",
    "WorkloadProfile": "NotConfigured",
    "SerialComm": "OnConRedir",
    "AcPwrRcvry": "Last",
    "AcPwrRcvryDelay": 0,
    "OsWatchdogTimer": "Disabled",
}
BIOS_ENUMS: dict[str, list[str]] = {
    "BootMode": ["Uefi", "Bios"],
    "SysProfile": ["PerfPerWattOptimizedOs", "PerfPerWattOptimizedDapc", "PerfOptimized", "Custom"],
    "ProcVirtualization": ["Enabled", "Disabled"],
    "LogicalProc": ["Enabled", "Disabled"],
    "ProcCStates": ["Enabled", "Disabled"],
    "SriovGlobalEnable": ["Enabled", "Disabled"],
    "MemTest": ["Enabled", "Disabled"],
    "NumaNodesPerSocket": ["1", "2", "4"],
    "NodeInterleave": ["Enabled", "Disabled"],
    "PcieAspmL1": ["Enabled", "Disabled"],
    "ProcTurboMode": ["Enabled", "Disabled"],
    "WorkloadProfile": ["NotConfigured", "HpcProfile", "DbOptimizedProfile"],
    "SerialComm": ["OnNoConRedir", "OnConRedir", "Off"],
    "AcPwrRcvry": ["Last", "On", "Off"],
    "OsWatchdogTimer": ["Enabled", "Disabled"],
}
# iDRAC attributes the lab models (Managers/iDRAC.Embedded.1/Attributes, the iDRAC.Embedded.1 component
# of an SCP), named as racadm and Dell's attribute registry name them: <Group>.<Index>#<Attribute>.
IDRAC_DEFAULTS: dict[str, Any] = {
    "IPMILan.1#Enable": "Disabled",
    "SerialRedirection.1#Enable": "Enabled",
    "NTPConfigGroup.1#NTPEnable": "Disabled",
    "NTPConfigGroup.1#NTP1": "",
    "Time.1#Timezone": "UTC",
    "WebServer.1#Enable": "Enabled",
    "Redfish.1#Enable": "Enabled",
    "ServerBoot.1#BootOnce": "Enabled",
    "ServerBoot.1#FirstBootDevice": "Normal",
    "Lockdown.1#SystemLockdown": "Disabled",
}
BOOT_TARGETS = ["None", "Pxe", "Cd", "Hdd", "BiosSetup", "Utilities", "UefiHttp", "UefiTarget", "SDCard"]
BOOT_ENABLED = ["Disabled", "Once", "Continuous"]
RESET_TYPES = [
    "On",
    "ForceOff",
    "ForceRestart",
    "GracefulRestart",
    "GracefulShutdown",
    "PushPowerButton",
    "PowerCycle",
    "Nmi",
]


@dataclass(slots=True)
class Session:
    id: str
    token: str
    user: str
    created: str
    last_used: float  # real monotonic seconds


@dataclass(slots=True)
class Job:
    id: str
    job_type: str  # "FirmwareUpdate" | "BIOSConfiguration"
    name: str
    created: float
    component: str = ""
    version: str = ""
    image: str = ""
    needs_reboot: bool = True
    ready_at: float = 0.0  # download done
    start_at: float | None = None  # apply starts (set at a reset for staged jobs)
    done_at: float | None = None
    outcome: str = "ok"  # "ok" | "fail" | "hang" | "invalid" | "errors" | "reboot_fail"
    settled: bool = False
    end_time: float | None = None
    payload: str = ""  # what an SCP export wrote
    awaits_ac_cycle: bool = False  # applied, but takes effect only after a virtual AC cycle

    def state(self, now: float) -> tuple[str, int, str]:
        """(JobState, PercentComplete, Message) at simulated time `now`."""
        if self.outcome == "invalid":
            return "Failed", 100, "Unable to verify the update package signature or package name."
        if self.job_type in REBOOT_JOBS:
            if self.done_at is not None and now < self.done_at:
                return "Running", 50, "Reboot in progress."
            if self.outcome == "reboot_fail":
                return "RebootFailed", 100, "The server did not complete POST after the reboot."
            return "RebootCompleted", 100, "Reboot is complete."
        if now < self.ready_at:
            return (
                "Downloading",
                int(50 * (now - self.created) / max(self.ready_at - self.created, 1e-9)),
                "Downloading the update package.",
            )
        if self.start_at is None or now < self.start_at:
            if self.job_type in CONFIG_JOBS:
                return "Scheduled", 0, "Task successfully scheduled."
            return "Scheduled", 50, "Task successfully scheduled."
        assert self.done_at is not None
        if self.outcome == "hang" and now >= self.start_at:
            return "Running", HANG_PERCENT, "Job in progress."
        if now < self.done_at:
            span = max(self.done_at - self.start_at, 1e-9)
            return "Running", 50 + int(49 * (now - self.start_at) / span), "Job in progress."
        if self.outcome == "fail":
            return "Failed", 100, "Unable to complete the firmware update: the device did not respond."
        if self.outcome == "errors":
            return "CompletedWithErrors", 100, "The update completed with errors: one or more devices were not updated."
        if self.outcome == "reboot_fail":
            return "RebootFailed", 100, "The server did not complete POST; the pending configuration was not applied."
        if self.awaits_ac_cycle:
            return "PendingActivation", 100, AC_CYCLE_MESSAGE
        return "Completed", 100, "Job completed successfully."


@dataclass(slots=True)
class Journal:
    """What was done to this server, for `lab status` and tests that check the orchestrator."""

    firmware_applied: Counter[str] = field(default_factory=Counter)
    firmware_failed: Counter[str] = field(default_factory=Counter)
    bios_changes: list[dict[str, Any]] = field(default_factory=list)
    resets: Counter[str] = field(default_factory=Counter)
    boot_overrides: list[dict[str, str]] = field(default_factory=list)
    virtual_media: list[str] = field(default_factory=list)
    images_pushed: list[dict[str, str]] = field(default_factory=list)  # {file, sha256} of each multipart upload
    sessions_created: int = 0
    requests: int = 0  # Redfish requests answered (any status), counted alike for every client
    sel_cleared: int = 0
    idrac_resets: int = 0
    job_queue_cleared: int = 0
    ac_cycles: int = 0
    lc_refusals: int = 0  # updates and jobs sent while the Lifecycle Controller was not ready
    scp_exports: int = 0
    scp_imports: int = 0
    os_installs: list[str] = field(default_factory=list)  # OSes installed from virtual media


class BMC:
    """One iDRAC and the server behind it."""

    def __init__(self, hw: NodeHardware, clock: SimClock, *, address: str, password: str, user: str = "root",
                 os_name: str | None = LAB_OS) -> None:
        self.hw = hw
        self.clock = clock
        self.address = address
        self.user = user
        self.password = password
        self.sessions: dict[str, Session] = {}
        self.session_timeout = SESSION_TIMEOUT_S  # idle timeout, real seconds
        self._session_seq = 0
        self.jobs: dict[str, Job] = {}
        self._job_seq = 0
        self.firmware = {key: spec[2] for key, spec in COMPONENTS.items()}
        self.previous_firmware: dict[str, str] = {}
        self.bios = dict(BIOS_DEFAULTS)
        self.bios_pending: dict[str, Any] = {}
        self.sel: list[dict[str, Any]] = []
        self._sel_seq = 0
        self.power_state = "On"
        self._power_until: float | None = None  # end of a transition
        self._power_next = "On"
        self.boot_progress = "OSRunning"
        self.boot = {"target": "None", "enabled": "Disabled", "mode": "UEFI", "uefi_target": ""}
        self.media: dict[str, dict[str, Any]] = {
            "CD": {"image": None, "inserted": False},
            "RemovableDisk": {"image": None, "inserted": False},
        }
        # The OS on the server's disk (None: a bare server, nothing boots and SSH never answers), and the one
        # an installer booted from virtual media is writing, with the simulated time its node answers again.
        self.os_name = os_name
        self.installing: tuple[str, float] | None = None
        self.unreachable_until: float | None = None  # iDRAC resetting after its own update
        self.lc_ready_at: float | None = None  # the LC's inventory collection after that restart
        self.journal = Journal()
        self.asset_tag = ""
        self.accounts = Accounts(user, password)
        self.secure_boot = False
        self.subscriptions: dict[str, dict[str, Any]] = {}  # event destinations; the lab sends no events
        self.idrac_attributes = dict(IDRAC_DEFAULTS)
        self.add_sel("Log cleared.", "SEL9901", "OK")
        self.add_sel("The system booted.", "SYS1003", "OK")

    # --- time --------------------------------------------------------------------------------
    def settle(self) -> None:
        """Bring power, jobs and resets up to the present simulated time."""
        now = self.clock.now()
        if self._power_until is not None and now >= self._power_until:
            self._power_until = None
            self.power_state = self._power_next
            self.hw.powered = self.power_state == "On"
            self.boot_progress = "OSRunning" if self.power_state == "On" else "None"
        for job in self.jobs.values():
            if not job.settled:
                self._settle_job(job, now)
        if self.installing is not None and now >= self.installing[1] and self.power_state == "On":
            self.os_name = self.installing[0]
            self.installing = None
            self.journal.os_installs.append(self.os_name)
        if self.unreachable_until is not None and now >= self.unreachable_until:
            # At least LC_SETTLE_REAL_S real seconds whatever the time scale: a compressed lab would
            # otherwise close the window before a client that never asks could be caught in it.
            settle = max(LC_SETTLE_S, LC_SETTLE_REAL_S * self.clock.time_scale)
            self.lc_ready_at = self.unreachable_until + settle
            self.unreachable_until = None

    def lc_ready(self) -> bool:
        """False while the iDRAC is back from a restart but its Lifecycle Controller still collects
        inventory: it answers requests, and refuses updates and jobs."""
        return self.lc_ready_at is None or self.clock.now() >= self.lc_ready_at

    def require_lc(self) -> None:
        """Refused with 503 and Retry-After, the DMTF way to say "later": a client that knows the LC
        asks GetRemoteServicesAPIStatus first and is never refused (the test counts lc_refusals); a
        generic Redfish client is refused and retries when told."""
        if not self.lc_ready():
            self.journal.lc_refusals += 1
            assert self.lc_ready_at is not None
            wait = math.ceil(self.clock.real_seconds(self.lc_ready_at - self.clock.now()))
            raise ActionError(503, "IDRAC.2.8.LC060", LC_NOT_READY, retry_after=max(1, wait))

    def _settle_job(self, job: Job, now: float) -> None:
        if job.outcome == "invalid":
            job.settled, job.end_time = True, job.created
            return
        ready = job.job_type == "FirmwareUpdate" and job.start_at is None and now >= job.ready_at
        if ready and not job.needs_reboot:  # iDRAC image: applies at once
            job.start_at = job.ready_at
            job.done_at = job.start_at + COMPONENTS[job.component][3]
        if job.done_at is None or now < job.done_at or job.outcome == "hang":
            return
        job.settled, job.end_time = True, job.done_at
        if job.job_type in REBOOT_JOBS:
            return
        if job.outcome == "reboot_fail":
            self.bios_pending = {}  # the configuration the failed reboot was to apply is gone
            return
        if job.outcome in ("fail", "errors"):
            self.journal.firmware_failed[job.component] += 1
            self.add_sel(
                f"Firmware update of {COMPONENTS[job.component][0]} failed.",
                "SUP0518",
                "Critical",
                at=job.done_at,
            )
            return
        if job.job_type in CONFIG_JOBS:
            if self.bios_pending:
                self.journal.bios_changes.append(dict(self.bios_pending))
                self.bios.update(self.bios_pending)
                self.bios_pending = {}
            return
        if job.job_type == "ExportConfiguration":
            return
        if job.component in AC_CYCLE_COMPONENTS:
            job.awaits_ac_cycle = True  # written to the device; the old image runs until the AC cycle
            return
        self._activate(job)

    def _activate(self, job: Job) -> None:
        """The job's image becomes the running firmware."""
        if self.firmware[job.component] != job.version:
            self.previous_firmware[job.component] = self.firmware[job.component]
        self.firmware[job.component] = job.version
        self.journal.firmware_applied[job.component] += 1
        self.add_sel(
            f"Firmware of {COMPONENTS[job.component][0]} updated to {job.version}.",
            "SUP0516",
            "OK",
            at=job.end_time,
        )
        if job.component == "idrac":
            self.unreachable_until = job.done_at + IDRAC_RESET_S
            self.sessions.clear()
            self.journal.idrac_resets += 1

    def resetting(self) -> float | None:
        """Real seconds until the iDRAC answers again after its own reset, or None."""
        self.settle()
        if self.unreachable_until is None:
            return None
        return self.clock.real_seconds(self.unreachable_until - self.clock.now())

    # --- sessions ----------------------------------------------------------------------------
    def check_password(self, user: str, password: str) -> bool:
        return self.accounts.check(user, password)

    def session_for(self, token: str) -> Session | None:
        real = time.monotonic()
        for sid in [s.id for s in self.sessions.values() if real - s.last_used > self.session_timeout]:
            self.sessions.pop(sid, None)
        found = next(
            (s for s in self.sessions.values() if secrets.compare_digest(s.token.encode(), token.encode())),
            None,
        )
        if found:
            found.last_used = real
        return found

    def create_session(self, user: str, password: str) -> Session:
        if not self.check_password(user, password):
            raise ActionError(
                401,
                "Base.1.12.ResourceAtUriUnauthorized",
                "The authentication credentials included with this request are missing or invalid.",
            )
        self.session_for("")  # expire idle ones
        limit = min([MAX_SESSIONS] + [int(p["max"]) for p in self.hw.faults_of("session_limit")])
        if len(self.sessions) >= limit:
            raise ActionError(
                503, "IDRAC.2.8.RAC0218", "The maximum number of user sessions is reached.", retry_after=30
            )
        self._session_seq += 1
        sess = Session(
            id=str(self._session_seq),
            token=secrets.token_hex(16),
            user=user,
            created=self.clock.iso(),
            last_used=time.monotonic(),
        )
        self.sessions[sess.id] = sess
        self.journal.sessions_created += 1
        return sess

    # --- SEL ---------------------------------------------------------------------------------
    def add_sel(
        self,
        message: str,
        message_id: str,
        severity: str,
        *,
        sensor: str = "System Event",
        at: float | None = None,
    ) -> None:
        self._sel_seq += 1
        self.sel.append(
            {
                "id": str(self._sel_seq),
                "message": message,
                "message_id": message_id,
                "severity": severity,
                "sensor": sensor,
                "created": self.clock.iso(at),
            }
        )

    def clear_sel(self) -> None:
        self.sel.clear()
        self.journal.sel_cleared += 1
        self.add_sel("Log cleared.", "SEL9901", "OK")

    # --- power -------------------------------------------------------------------------------
    def reset(self, reset_type: str) -> None:
        if reset_type not in RESET_TYPES:
            raise ActionError(
                400,
                "Base.1.12.ActionParameterValueNotInList",
                f"The value '{reset_type}' for the parameter ResetType is not in the list of acceptable values.",
                args=[reset_type, "ResetType"],
            )
        self.settle()
        now = self.clock.now()
        on = self.power_state in ("On", "PoweringOn")
        if reset_type == "Nmi":
            self.journal.resets[reset_type] += 1
            return
        if reset_type == "PushPowerButton":
            reset_type = "GracefulShutdown" if on else "On"
        if reset_type == "On" and on or reset_type in ("ForceOff", "GracefulShutdown") and not on:
            state = "ON" if on else "OFF"
            # iDRAC answers 409 with PSU501 "Server is already powered ON." (dell/dellemc-openmanage-ansible-modules
            # issues 115 and 132); the OFF twin (PSU502) follows Dell's numbering, not a published capture.
            raise ActionError(
                409, "IDRAC.2.8.PSU501" if on else "IDRAC.2.8.PSU502", f"Server is already powered {state}."
            )
        self.journal.resets[reset_type] += 1
        self.add_sel(f"Server power action {reset_type} requested.", "SYS1001", "OK", at=now)
        if reset_type == "ForceOff":
            self._set_power("Off", None)
        elif reset_type == "GracefulShutdown":
            self._set_power("PoweringOff", now + SHUTDOWN_S, then="Off")
        else:
            start = now + (SHUTDOWN_S if reset_type == "GracefulRestart" and on else 0.0)
            self._boot(start)

    def _set_power(self, state: str, until: float | None, then: str = "On") -> None:
        self.power_state = state
        self._power_until = until
        self._power_next = then
        self.hw.powered = state in ("On", "PoweringOn")
        self.boot_progress = "None" if state in ("Off", "PoweringOff") else self.boot_progress

    def _boot(self, start: float) -> None:
        """Power on at `start`: run staged jobs in order, then POST, then the OS is up."""
        t = start
        for job in self.jobs.values():
            if job.settled or job.start_at is not None or job.outcome == "invalid":
                continue
            if job.job_type == "FirmwareUpdate" and (not job.needs_reboot or start < job.ready_at):
                continue
            job.start_at = t
            duration = BIOS_JOB_S if job.job_type in CONFIG_JOBS else COMPONENTS[job.component][3]
            job.done_at = t + duration
            t = job.done_at
        self._boot_media(t)
        if self.boot["enabled"] == "Once":
            self.journal.boot_overrides.append({"target": self.boot["target"], "consumed": "Once"})
            self.boot["enabled"], self.boot["target"] = "Disabled", "None"
        self._set_power("PoweringOn", t + POST_S, then="On")
        self.boot_progress = "SystemHardwareInitializationComplete"

    def _boot_media(self, start: float) -> None:
        """A boot overridden to the virtual CD with an installer ISO in it runs the installer: it writes the OS
        to disk and reboots into it, and only then does the node answer SSH (the installer itself runs no
        SSH server the site's key opens). Any other boot ends an unfinished install: the disk stays as it was."""
        self.installing = None
        cd = self.media["CD"]
        if self.boot["enabled"] == "Disabled" or self.boot["target"] != "Cd" or not cd["inserted"]:
            return
        name = OS_IMAGES.get(str(cd["image"]))
        if name is not None:
            done = math.inf if self.hw.has_fault("os_install_hangs") else start + POST_S + INSTALL_S + POST_S
            self.installing = (name, done)

    def os_answers(self) -> bool:
        """Whether the node's OS is up: powered, an OS on disk, and no installer running."""
        self.settle()
        return self.hw.powered and self.os_name is not None and self.installing is None

    # --- firmware ----------------------------------------------------------------------------
    def _new_job_id(self) -> str:
        self._job_seq += 1
        return f"JID_{(int(time.time()) * 1000 + self._job_seq) % 10**12:012d}"

    def simple_update(self, image_uri: str, apply_time: str = "OnReset", content: bytes | None = None) -> Job:
        """Stage an image fetched from `image_uri` (SimpleUpdate) or pushed as `content` (multipart)."""
        self.settle()
        self.require_lc()
        if apply_time not in ("Immediate", "OnReset"):
            raise ActionError(
                400,
                "Base.1.12.ActionParameterValueNotInList",
                f"The value '{apply_time}' for @Redfish.OperationApplyTime is not supported.",
            )
        now = self.clock.now()
        name = image_uri.rstrip("/").rsplit("/", 1)[-1]
        if content is not None:
            self.journal.images_pushed.append({"file": name, "sha256": hashlib.sha256(content).hexdigest()})
        found = identify_image(name, content)
        job = Job(
            id=self._new_job_id(),
            job_type="FirmwareUpdate",
            name="Firmware Update: " + name,
            created=now,
            image=image_uri,
            ready_at=now + (DOWNLOAD_S if content is None else PUSH_VERIFY_S),
        )
        if found is None:
            job.outcome = "invalid"
        else:
            job.component, job.version = found
            job.name = f"Firmware Update: {COMPONENTS[job.component][0]}"
            job.needs_reboot = job.component != "idrac"
            for kind, outcome in (
                ("firmware_update_fails", "fail"),
                ("firmware_update_hangs", "hang"),
                ("firmware_completes_with_errors", "errors"),
            ):
                if any(p["component"] in ("", job.component) for p in self.hw.faults_of(kind)):
                    job.outcome = outcome
        self.jobs[job.id] = job
        self._settle_job(job, now)
        if apply_time == "Immediate" and job.needs_reboot and job.outcome != "invalid":
            self._pending_immediate(job)
        return job

    def _pending_immediate(self, job: Job) -> None:
        """Immediate apply of a staged image: the iDRAC reboots the server once the download is done."""
        self.journal.resets["ImmediateApply"] += 1
        self._boot(job.ready_at)

    def firmware_items(self) -> list[dict[str, Any]]:
        """Installed and previous firmware, one entry per device, as iDRAC lists them."""
        items = []
        for key, (name, cid, _, _, count) in COMPONENTS.items():
            for state, version in (
                ("Installed", self.firmware[key]),
                ("Previous", self.previous_firmware.get(key)),
            ):
                if version is None:
                    continue
                for n in range(count):
                    if key == "gpu" and not self.hw.gpu_present(n):
                        continue
                    dev = f" {n + 1}" if count > 1 else ""
                    items.append(
                        {
                            "id": f"{state}-{cid}-{version}" + (f"__{key}.{n + 1}" if count > 1 else ""),
                            "name": name + dev,
                            "version": version,
                            "state": state,
                            "component_id": cid,
                            "updateable": True,
                            "component": key,
                        }
                    )
        return items

    # --- BIOS ----------------------------------------------------------------------------------
    def set_bios_pending(self, attributes: dict[str, Any]) -> None:
        for key, value in attributes.items():
            if key not in self.bios:
                raise ActionError(
                    400,
                    "Base.1.12.PropertyUnknown",
                    f"The property {key} is not in the list of valid properties for the resource.",
                    args=[key],
                )
            allowed = BIOS_ENUMS.get(key)
            if (
                allowed is not None
                and value not in allowed
                or (allowed is None and (isinstance(value, bool) or not isinstance(value, type(self.bios[key]))))
            ):
                raise ActionError(
                    400,
                    "Base.1.12.PropertyValueNotInList",
                    f"The value '{value}' for the property {key} is not in the list of acceptable values.",
                    args=[str(value), key],
                )
        self.bios_pending.update(attributes)

    def create_bios_job(self) -> Job:
        self.settle()
        self.require_lc()
        if not self.bios_pending:
            raise ActionError(
                400,
                "IDRAC.2.8.SYS011",
                "Pending configuration values are not available to successfully create a configuration job.",
            )
        if any(j.job_type == "BIOSConfiguration" and not j.settled for j in self.jobs.values()):
            raise ActionError(400, "IDRAC.2.8.SYS011", "A configuration job already exists for BIOS.")
        now = self.clock.now()
        job = Job(
            id=self._new_job_id(),
            job_type="BIOSConfiguration",
            name="Configure: BIOS.Setup.1-1",
            created=now,
            ready_at=now,
            outcome="reboot_fail" if self.hw.has_fault("reboot_fails") else "ok",
        )
        self.jobs[job.id] = job
        return job

    def config_job(self, job_type: str, name: str, *, staged: bool = False) -> Job:
        """An SCP export or import job: done in SCP_S, or, when `staged`, at the next reboot like a BIOS job."""
        self.settle()
        self.require_lc()
        now = self.clock.now()
        job = Job(id=self._new_job_id(), job_type=job_type, name=name, created=now, ready_at=now)
        if not staged:
            job.start_at, job.done_at = now, now + SCP_S
        elif self.hw.has_fault("reboot_fails"):
            job.outcome = "reboot_fail"
        self.jobs[job.id] = job
        attr = "scp_exports" if job_type == "ExportConfiguration" else "scp_imports"
        setattr(self.journal, attr, getattr(self.journal, attr) + 1)
        return job

    def reboot_job(self, reboot_type: str) -> Job:
        """A Dell reboot job (RID_...): the server reboots now so that pending configuration jobs run."""
        job_type = REBOOT_JOB_TYPES.get(reboot_type)
        if job_type is None:
            raise ActionError(
                400,
                "Base.1.12.PropertyValueNotInList",
                f"The value '{reboot_type}' for the property RebootJobType is not in the list of acceptable values.",
                args=[str(reboot_type), "RebootJobType"],
            )
        self.settle()
        now = self.clock.now()
        self._job_seq += 1
        job = Job(
            id=f"RID_{(int(time.time()) * 1000 + self._job_seq) % 10**12:012d}",
            job_type=job_type,
            name="Reboot3",
            created=now,
            ready_at=now,
            outcome="reboot_fail" if self.hw.has_fault("reboot_fails") else "ok",
        )
        job.start_at, job.done_at = now, now + SHUTDOWN_S
        self.jobs[job.id] = job
        if self.power_state == "Off":
            self.reset("On")
        else:
            self.reset(REBOOT_JOBS[job_type])
        return job

    def reset_idrac(self) -> None:
        """The iDRAC restarts: it stops answering for a while and every session is lost."""
        self.unreachable_until = self.clock.now() + IDRAC_RESET_S
        self.sessions.clear()
        self.journal.idrac_resets += 1

    def extended_reset(self, reset_type: str, final_power_state: str) -> None:
        """DellOemChassis.ExtendedReset: a virtual AC cycle that drains flea power, so firmware that waits
        for one (HGX baseboard, CPLD) takes effect; the server must be off first, as on iDRAC9 7.x."""
        _only_power_cycle(reset_type)
        if final_power_state not in ("On", "Off"):
            raise ActionError(
                400,
                "Base.1.12.ActionParameterValueNotInList",
                f"The value '{final_power_state}' for the parameter FinalPowerState is not in the list of "
                "acceptable values.",
                args=[str(final_power_state), "FinalPowerState"],
            )
        self.settle()
        if self.power_state != "Off":
            raise ActionError(
                409,
                "IDRAC.2.8.PSU503",
                "Unable to perform the virtual AC power cycle because the server is not powered off.",
            )
        self._ac_cycle(final_power_state)

    def chassis_power_cycle(self, reset_type: str) -> None:
        """DMTF Chassis.Reset PowerCycle, which DMTF defines as a full power removal followed by a power
        restore: an AC cycle from whatever state the server is in, back on at the end."""
        _only_power_cycle(reset_type)
        self.settle()
        self._set_power("Off", None)
        self._ac_cycle("On")

    def _ac_cycle(self, final_power_state: str) -> None:
        """All power goes, the iDRAC's standby power too: firmware that waits for it (HGX baseboard,
        CPLD) takes effect, and the iDRAC restarts and loses its sessions."""
        now = self.clock.now()
        self.journal.ac_cycles += 1
        self.add_sel("A virtual AC power cycle was performed.", "SYS1004", "OK", at=now)
        failing = {p["component"] for p in self.hw.faults_of("activation_fails")}
        for job in self.jobs.values():
            if job.awaits_ac_cycle:
                job.awaits_ac_cycle = False
                job.end_time = now
                if not failing & {"", job.component}:
                    self._activate(job)
        self.unreachable_until = now + AC_CYCLE_S
        self.sessions.clear()
        if final_power_state == "On":
            self._boot(now + AC_CYCLE_S)

    def clear_pending_bios(self) -> None:
        self.bios_pending = {}

    def delete_job(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            raise ActionError(404, "Base.1.12.ResourceMissingAtURI", f"The job {job_id} does not exist.")
        if not job.settled and job.start_at is not None and self.clock.now() >= job.start_at:
            raise ActionError(400, "IDRAC.2.8.SUP011", "Unable to delete a running job.")
        del self.jobs[job_id]

    # --- boot and media ------------------------------------------------------------------------
    def set_boot(self, target: str | None, enabled: str | None, mode: str | None, uefi_target: Any = None) -> None:
        if target is not None and target not in BOOT_TARGETS:
            raise ActionError(
                400,
                "Base.1.12.PropertyValueNotInList",
                f"The value '{target}' for the property BootSourceOverrideTarget is not in the "
                "list of acceptable values.",
                args=[str(target), "BootSourceOverrideTarget"],
            )
        if enabled is not None and enabled not in BOOT_ENABLED:
            raise ActionError(
                400,
                "Base.1.12.PropertyValueNotInList",
                f"The value '{enabled}' for the property BootSourceOverrideEnabled is not in "
                "the list of acceptable values.",
                args=[str(enabled), "BootSourceOverrideEnabled"],
            )
        if mode is not None and mode not in ("UEFI", "Legacy"):
            raise ActionError(
                400,
                "Base.1.12.PropertyValueNotInList",
                f"The value '{mode}' for the property BootSourceOverrideMode is not in the list of acceptable values.",
                args=[str(mode), "BootSourceOverrideMode"],
            )
        if uefi_target is not None and not isinstance(uefi_target, str):
            raise ActionError(
                400,
                "Base.1.12.PropertyValueTypeError",
                "The value for the property UefiTargetBootSourceOverride is of a different type than the property "
                "can accept.",
                args=["UefiTargetBootSourceOverride"],
            )
        if uefi_target is not None:
            self.boot["uefi_target"] = uefi_target
        if target is not None:
            self.boot["target"] = target
            if enabled is None and self.boot["enabled"] == "Disabled" and target != "None":
                self.boot["enabled"] = "Once"
        if enabled is not None:
            self.boot["enabled"] = enabled
        if mode is not None:
            self.boot["mode"] = mode
        self.journal.boot_overrides.append({"target": self.boot["target"], "enabled": self.boot["enabled"]})

    def insert_media(self, device: str, image: str) -> None:
        slot = self.media[device]
        if slot["inserted"]:
            raise ActionError(400, "IDRAC.2.8.VRM0012", "The Virtual Media image server is already connected.")
        if image not in OS_IMAGES:
            raise ActionError(400, "IDRAC.2.8.RAC0720", RAC0720)
        slot["image"], slot["inserted"] = image, True
        self.journal.virtual_media.append(image)

    def eject_media(self, device: str) -> None:
        slot = self.media[device]
        if not slot["inserted"]:
            raise ActionError(400, "IDRAC.2.8.VRM0009", "No Virtual Media devices are currently connected.")
        if self.hw.has_fault("media_eject_fails"):
            raise ActionError(500, "Base.1.12.GeneralError", "A general error has occurred. See Resolution for "
                              "information on how to resolve the error.")
        slot["image"], slot["inserted"] = None, False

    # --- faults with an event ------------------------------------------------------------------
    def on_fault(self, kind: str, params: dict[str, Any]) -> None:
        """Write the SEL entry a real BMC would log when this fault appears."""
        events = {
            "xid": (
                f"GPU {params.get('gpu')} reported NVIDIA Xid {params.get('code')}.",
                "PCI3030",
                "Critical",
                "GPU",
            ),
            "psu_failed": (
                f"Power supply {params.get('psu')} failed.",
                "PSU0003",
                "Critical",
                "Power Supply",
            ),
            "fan_failed": (
                f"Fan {params.get('fan')} RPM is less than the lower critical threshold.",
                "FAN0001",
                "Critical",
                "Fan",
            ),
            "inlet_temp_high": (
                "The system inlet temperature is greater than the upper critical threshold.",
                "TMP0120",
                "Critical",
                "Temperature",
            ),
            "power_over_cap": (
                "The system power consumption exceeds the power cap.",
                "PWR2262",
                "Warning",
                "Power",
            ),
            "gpu_missing": (f"GPU {params.get('gpu')} is absent.", "PCI3022", "Critical", "GPU"),
        }
        if kind in events:
            message, mid, severity, sensor = events[kind]
            self.add_sel(message, mid, severity, sensor=sensor)

    # --- lab status ----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        self.settle()
        j = self.journal
        return {
            "node": self.hw.name,
            "bmc": self.address,
            "power_state": self.power_state,
            "boot_progress": self.boot_progress,
            "firmware": dict(self.firmware),
            "firmware_applied": dict(j.firmware_applied),
            "firmware_failed": dict(j.firmware_failed),
            "bios_changes": list(j.bios_changes),
            "bios_pending": dict(self.bios_pending),
            "resets": dict(j.resets),
            "boot_override": dict(self.boot),
            "boot_overrides": list(j.boot_overrides),
            "virtual_media": list(j.virtual_media),
            "media_inserted": {d: m["image"] for d, m in self.media.items() if m["inserted"]},
            "os": self.os_name,
            "os_installs": list(j.os_installs),
            "images_pushed": list(j.images_pushed),
            "jobs": {jid: job.state(self.clock.now())[0] for jid, job in self.jobs.items()},
            "sessions": len(self.sessions),
            "sessions_created": j.sessions_created,
            "requests": j.requests,
            "idrac_resets": j.idrac_resets,
            "job_queue_cleared": j.job_queue_cleared,
            "ac_cycles": j.ac_cycles,
            "lc_refusals": j.lc_refusals,
            "scp_exports": j.scp_exports,
            "scp_imports": j.scp_imports,
            "sel_entries": len(self.sel),
            "faults": [f.as_dict() for f in self.hw.faults],
        }


def _only_power_cycle(reset_type: str) -> None:
    """The chassis resets (DMTF's and Dell's ExtendedReset) take PowerCycle and nothing else."""
    if reset_type != "PowerCycle":
        raise ActionError(
            400,
            "Base.1.12.ActionParameterValueNotInList",
            f"The value '{reset_type}' for the parameter ResetType is not in the list of acceptable values.",
            args=[str(reset_type), "ResetType"],
        )
