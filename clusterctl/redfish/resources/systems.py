"""ComputerSystem: what a server is (summary), its power (Reset) and its next boot (override)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.resources.common import RedfishModel, Ref, Resource, Status, action_target, allowable

SYSTEMS = "/redfish/v1/Systems"

# Preference order per intent; the first the BMC lists in ResetType@Redfish.AllowableValues wins.
POWER_ACTIONS: dict[str, tuple[str, ...]] = {
    "on": ("On", "ForceOn"),
    "off": ("ForceOff", "GracefulShutdown"),
    "shutdown": ("GracefulShutdown",),
    "cycle": ("PowerCycle", "ForceRestart", "GracefulRestart"),
    "restart": ("GracefulRestart", "ForceRestart"),
}
# DMTF BootSourceOverrideTarget values for the ways we provision.
BOOT_TARGETS = {
    "pxe": "Pxe",
    "http": "UefiHttp",
    "uefi": "UefiTarget",
    "cd": "Cd",
    "disk": "Hdd",
    "usb": "Usb",
    "bios": "BiosSetup",
    "none": "None",
}


class ProcessorSummary(RedfishModel):
    count: int | None = Field(default=None, alias="Count")
    model: str | None = Field(default=None, alias="Model")
    status: Status = Field(default_factory=Status, alias="Status")


class MemorySummary(RedfishModel):
    total_gib: float | None = Field(default=None, alias="TotalSystemMemoryGiB")
    status: Status = Field(default_factory=Status, alias="Status")


class Boot(RedfishModel):
    enabled: str | None = Field(default=None, alias="BootSourceOverrideEnabled")
    target: str | None = Field(default=None, alias="BootSourceOverrideTarget")
    mode: str | None = Field(default=None, alias="BootSourceOverrideMode")
    allowed_targets: list[str] = Field(default_factory=list, alias="BootSourceOverrideTarget@Redfish.AllowableValues")
    http_boot_uri: str | None = Field(default=None, alias="HttpBootUri")
    uefi_target: str | None = Field(default=None, alias="UefiTargetBootSourceOverride")


class ComputerSystem(Resource):
    manufacturer: str | None = Field(default=None, alias="Manufacturer")
    model: str | None = Field(default=None, alias="Model")
    serial: str | None = Field(default=None, alias="SerialNumber")
    sku: str | None = Field(default=None, alias="SKU")
    service_tag: str | None = Field(default=None, alias="AssetTag")
    hostname: str | None = Field(default=None, alias="HostName")
    uuid: str | None = Field(default=None, alias="UUID")
    power_state: str | None = Field(default=None, alias="PowerState")
    bios_version: str | None = Field(default=None, alias="BiosVersion")
    processors: ProcessorSummary = Field(default_factory=ProcessorSummary, alias="ProcessorSummary")
    memory: MemorySummary = Field(default_factory=MemorySummary, alias="MemorySummary")
    boot: Boot = Field(default_factory=Boot, alias="Boot")
    bios: Ref | None = Field(default=None, alias="Bios")
    log_services: Ref | None = Field(default=None, alias="LogServices")
    virtual_media: Ref | None = Field(default=None, alias="VirtualMedia")

    def reset_types(self) -> list[str]:
        _, action = action_target(self.model_dump(by_alias=True), "ComputerSystem.Reset")
        return allowable(action, "ResetType")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "power_state": self.power_state,
            "health": self.status.health,
            "bios_version": self.bios_version,
            "cpus": self.processors.count,
            "cpu_model": self.processors.model,
            "memory_gib": self.memory.total_gib,
            "boot_override": self.boot.target if self.boot.enabled not in (None, "Disabled") else None,
            "boot_override_enabled": self.boot.enabled,
            "boot_mode": self.boot.mode,
        }


async def list_systems(client: RedfishClient) -> list[ComputerSystem]:
    root_ref = odata_id(client.root.get("Systems")) or SYSTEMS
    return [ComputerSystem.model_validate(m) for m in await client.members(root_ref)]


async def get_system(client: RedfishClient, uri: str | None = None) -> ComputerSystem:
    """The system at `uri`, or the only/first one (a BMC manages one server in our fleets)."""
    if uri:
        return ComputerSystem.model_validate(await client.get(uri))
    systems = await list_systems(client)
    if not systems:
        raise BMCRequestFailed("the BMC lists no ComputerSystem", bmc=client.name)
    return systems[0]


def pick_reset_type(system: ComputerSystem, intent: str) -> str:
    """The ResetType for `intent` (on/off/cycle/...) among the values this BMC allows."""
    wanted = POWER_ACTIONS.get(intent)
    if wanted is None:
        raise ValueError(f"unknown power action {intent!r}; use one of {', '.join(POWER_ACTIONS)}")
    offered = system.reset_types()
    if not offered:  # BMC does not publish AllowableValues: DMTF says all are allowed
        return wanted[0]
    for reset_type in wanted:
        if reset_type in offered:
            return reset_type
    raise BMCRequestFailed(f"power {intent}: BMC allows only {', '.join(offered)}", status=None)


async def reset(client: RedfishClient, system: ComputerSystem, reset_type: str) -> None:
    offered = system.reset_types()
    if offered and reset_type not in offered:
        raise BMCRequestFailed(f"ResetType {reset_type} not allowed (allowed: {', '.join(offered)})", bmc=client.name)
    target, _ = action_target(system.model_dump(by_alias=True), "ComputerSystem.Reset")
    target = target or f"{system.odata_id}/Actions/ComputerSystem.Reset"
    await client.post(target, {"ResetType": reset_type})


async def power(client: RedfishClient, system: ComputerSystem, intent: str) -> str:
    """Power on/off/cycle; returns the ResetType sent. `on` when already On is a no-op (idempotent)."""
    if intent == "on" and system.power_state == "On":
        return "none"
    if intent in ("off", "shutdown") and system.power_state == "Off":
        return "none"
    reset_type = pick_reset_type(system, intent)
    await reset(client, system, reset_type)
    return reset_type


async def switch_power(client: RedfishClient, intent: str) -> dict[str, Any]:
    """`power` for the BMC's system: its PowerState before, and the ResetType sent."""
    system = await get_system(client)
    sent = await power(client, system, intent)
    return {"before": system.power_state, "reset_type": sent}


async def set_boot_override(
    client: RedfishClient,
    system: ComputerSystem,
    how: str,
    *,
    enabled: Literal["Once", "Continuous", "Disabled"] = "Once",
    mode: Literal["UEFI", "Legacy"] | None = "UEFI",
    http_uri: str | None = None,
) -> dict[str, Any]:
    """Boot once (by default) from pxe/http/uefi/cd/disk; `how` may also be a raw DMTF target."""
    target = BOOT_TARGETS.get(how.lower(), how)
    if system.boot.allowed_targets and target not in system.boot.allowed_targets:
        raise BMCRequestFailed(
            f"boot target {target} not offered (offered: {', '.join(system.boot.allowed_targets)})",
            bmc=client.name,
        )
    boot: dict[str, Any] = {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled}
    if mode:
        boot["BootSourceOverrideMode"] = mode
    if http_uri:
        boot["HttpBootUri"] = http_uri
    assert system.odata_id
    await client.patch_fresh(system.odata_id, {"Boot": boot})
    return boot
