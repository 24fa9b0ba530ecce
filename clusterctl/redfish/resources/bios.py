"""Bios: current Attributes, the pending settings object, changes through it, and the
AttributeRegistry that says which values an attribute accepts.

Changes go to the `@Redfish.Settings` object (applied at the next reset on most BMCs); the
resource itself is read-only. A change is computed as a diff first, so a re-run changes nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.resources.common import Resource, settings_object
from clusterctl.redfish.resources.systems import ComputerSystem, get_system


class Bios(Resource):
    attributes: dict[str, Any] = Field(default_factory=dict, alias="Attributes")
    registry: str | None = Field(default=None, alias="AttributeRegistry")

    def settings_uri(self) -> str | None:
        return settings_object(self.model_dump(by_alias=True))[0]

    def apply_times(self) -> list[str]:
        return settings_object(self.model_dump(by_alias=True))[1]


async def read_bios(client: RedfishClient, system: ComputerSystem) -> Bios:
    uri = system.bios.odata_id if system.bios else None
    if not uri:
        raise BMCRequestFailed(f"system {system.id} has no Bios resource", bmc=client.name)
    return Bios.model_validate(await client.get(uri))


async def pending(client: RedfishClient, bios: Bios) -> dict[str, Any]:
    """Attributes waiting in the settings object that differ from the current ones."""
    uri = bios.settings_uri()
    if not uri:
        return {}
    staged = (await client.get(uri)).get("Attributes") or {}
    return {k: v for k, v in staged.items() if bios.attributes.get(k) != v}


async def bios_view(client: RedfishClient, names: set[str] | None = None) -> dict[str, Any]:
    """Current attributes and those pending in the settings object (`names`: only these)."""
    current = await read_bios(client, await get_system(client))
    staged = await pending(client, current)
    return {
        "attributes": {k: v for k, v in current.attributes.items() if not names or k in names},
        "pending": {k: v for k, v in staged.items() if not names or k in names},
    }


def diff(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The attributes to change; unknown names are errors (a typo must not pass silently)."""
    unknown = sorted(set(desired) - set(current))
    if unknown:
        raise BMCRequestFailed(f"unknown BIOS attribute(s): {', '.join(unknown)}")
    return {k: v for k, v in desired.items() if current.get(k) != v}


async def stage_attributes(
    client: RedfishClient, bios: Bios, desired: dict[str, Any], *, apply_time: str | None = None
) -> dict[str, Any]:
    """PATCH the settings object with what differs; returns the change ({} means already as desired)."""
    change = diff(bios.attributes, desired)
    if not change:
        return {}
    uri = bios.settings_uri() or bios.odata_id
    assert uri
    body: dict[str, Any] = {"Attributes": change}
    if apply_time:
        times = bios.apply_times()
        if times and apply_time not in times:
            raise BMCRequestFailed(f"apply time {apply_time} not supported ({', '.join(times)})", bmc=client.name)
        body["@Redfish.SettingsApplyTime"] = {"ApplyTime": apply_time}
    await client.patch_fresh(uri, body)
    return change


async def attribute_registry(client: RedfishClient, bios: Bios) -> dict[str, dict[str, Any]]:
    """AttributeName -> registry entry (Type, ReadOnly, Value list...), found via /redfish/v1/Registries."""
    if not bios.registry:
        return {}
    registries = odata_id(client.root.get("Registries")) or "/redfish/v1/Registries"
    for entry in await client.members(registries):
        if entry.get("Id") != bios.registry and entry.get("Registry") != bios.registry:
            continue
        for location in entry.get("Location") or []:
            uri = location.get("Uri")
            if uri:
                registry = await client.get(uri)
                attrs = (registry.get("RegistryEntries") or {}).get("Attributes") or []
                return {a["AttributeName"]: a for a in attrs if isinstance(a, dict) and "AttributeName" in a}
    return {}
