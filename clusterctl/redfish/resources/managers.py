"""Managers (the BMC itself) and their VirtualMedia: insert/eject an ISO for a boot."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.resources.common import Ref, Resource, action_target
from clusterctl.redfish.resources.systems import ComputerSystem, get_system, set_boot_override

MANAGERS = "/redfish/v1/Managers"


class Manager(Resource):
    manager_type: str | None = Field(default=None, alias="ManagerType")
    firmware_version: str | None = Field(default=None, alias="FirmwareVersion")
    model: str | None = Field(default=None, alias="Model")
    uuid: str | None = Field(default=None, alias="UUID")
    virtual_media: Ref | None = Field(default=None, alias="VirtualMedia")
    log_services: Ref | None = Field(default=None, alias="LogServices")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.manager_type,
            "model": self.model,
            "firmware": self.firmware_version,
            "health": self.status.health,
        }


class VirtualMedia(Resource):
    image: str | None = Field(default=None, alias="Image")
    inserted: bool | None = Field(default=None, alias="Inserted")
    media_types: list[str] = Field(default_factory=list, alias="MediaTypes")
    write_protected: bool | None = Field(default=None, alias="WriteProtected")
    connected_via: str | None = Field(default=None, alias="ConnectedVia")


async def list_managers(client: RedfishClient) -> list[Manager]:
    uri = odata_id(client.root.get("Managers")) or MANAGERS
    return [Manager.model_validate(m) for m in await client.members(uri)]


async def server_summary(client: RedfishClient) -> dict[str, Any]:
    """What the BMC says its server is (model, serial, power, health, BIOS), with its own firmware."""
    system, managers = await asyncio.gather(get_system(client), list_managers(client))
    bmc_fw = managers[0].firmware_version if managers else None
    return {**system.summary(), "bmc_firmware": bmc_fw, "auth": client.auth_mode}


async def virtual_media(client: RedfishClient, manager: Manager) -> list[VirtualMedia]:
    if manager.virtual_media is None or not manager.virtual_media.odata_id:
        return []
    return [VirtualMedia.model_validate(m) for m in await client.members(manager.virtual_media.odata_id)]


async def media_slots(client: RedfishClient, system: ComputerSystem, manager: Manager) -> list[VirtualMedia]:
    """The virtual media slots, under the system where the BMC serves them there, else under the manager.

    Redfish moved VirtualMedia from the manager to the system it serves; iDRAC9 serves it under
    Systems/System.Embedded.1 from firmware 6.00 and Dell's own scripts switch on that version.
    Older iDRACs and many other BMCs still have only the Managers path, so a missing or empty
    system collection falls back to it.
    """
    for link in (system.virtual_media, manager.virtual_media):
        if link is None or not link.odata_id:
            continue
        try:
            slots = [VirtualMedia.model_validate(m) for m in await client.members(link.odata_id)]
        except BMCRequestFailed as exc:
            if exc.status in (404, 405):
                continue
            raise
        if slots:
            return slots
    return []


def cd_slot(media: list[VirtualMedia]) -> VirtualMedia | None:
    """The slot that takes an ISO: MediaTypes lists CD or DVD (vendors name slots differently)."""
    for slot in media:
        if {"CD", "DVD"} & set(slot.media_types):
            return slot
    return media[0] if media else None


async def insert_media(client: RedfishClient, slot: VirtualMedia, image_url: str) -> None:
    """InsertMedia when offered; older services only take a PATCH of Image (DSP2046 2016 model)."""
    assert slot.odata_id
    raw = slot.model_dump(by_alias=True)
    target, _ = action_target(raw, "VirtualMedia.InsertMedia")
    if target:
        await client.post(target, {"Image": image_url, "Inserted": True, "WriteProtected": True})
    else:
        await client.patch_fresh(slot.odata_id, {"Image": image_url, "Inserted": True})


async def eject_media(client: RedfishClient, slot: VirtualMedia) -> None:
    assert slot.odata_id
    target, _ = action_target(slot.model_dump(by_alias=True), "VirtualMedia.EjectMedia")
    if target:
        await client.post(target, {})
    else:
        await client.patch_fresh(slot.odata_id, {"Image": None, "Inserted": False})


async def boot_once_from_iso(
    client: RedfishClient, system: ComputerSystem, manager: Manager, image_url: str
) -> VirtualMedia:
    """Insert an ISO in the CD slot and make the next boot (only) use it."""
    slot = cd_slot(await media_slots(client, system, manager))
    if slot is None:
        raise BMCRequestFailed(f"neither system {system.id} nor manager {manager.id} has a virtual media slot",
                               bmc=client.name)
    await insert_media(client, slot, image_url)
    await set_boot_override(client, system, "cd", enabled="Once")
    return slot
