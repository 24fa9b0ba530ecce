"""What every Redfish resource shares: @odata.id, Id, Name, Status; tolerant parsing.

Vendors differ in which optional properties they fill and add their own, so every model
accepts unknown keys and treats every property as optional.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RedfishModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=False)


class Ref(RedfishModel):
    odata_id: str | None = Field(default=None, alias="@odata.id")


class Status(RedfishModel):
    state: str | None = Field(default=None, alias="State")
    health: str | None = Field(default=None, alias="Health")
    health_rollup: str | None = Field(default=None, alias="HealthRollup")


class Resource(RedfishModel):
    odata_id: str | None = Field(default=None, alias="@odata.id")
    odata_type: str | None = Field(default=None, alias="@odata.type")
    id: str | None = Field(default=None, alias="Id")
    name: str | None = Field(default=None, alias="Name")
    status: Status = Field(default_factory=Status, alias="Status")


def action_target(resource: dict[str, Any], action: str) -> tuple[str | None, dict[str, Any]]:
    """(`target` URI, the action object) of `#Family.Action` in a resource's Actions, if offered."""
    actions = resource.get("Actions") or {}
    found = actions.get(f"#{action}")
    if not isinstance(found, dict):
        return None, {}
    return found.get("target"), found


def allowable(obj: dict[str, Any], prop: str) -> list[str]:
    """`prop@Redfish.AllowableValues` of an object (an action or a resource)."""
    values = obj.get(f"{prop}@Redfish.AllowableValues")
    return [str(v) for v in values] if isinstance(values, list) else []


def settings_object(resource: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(URI to PATCH, supported apply times) from `@Redfish.Settings`, when the resource has one."""
    settings = resource.get("@Redfish.Settings")
    if not isinstance(settings, dict):
        return None, []
    uri = (settings.get("SettingsObject") or {}).get("@odata.id")
    times = settings.get("SupportedApplyTimes") or []
    return uri, [str(t) for t in times]


def operation_apply_times(obj: dict[str, Any]) -> list[str]:
    """`@Redfish.OperationApplyTimeSupport.SupportedValues` of an action or collection."""
    support = obj.get("@Redfish.OperationApplyTimeSupport")
    if not isinstance(support, dict):
        return []
    return [str(v) for v in support.get("SupportedValues") or []]
