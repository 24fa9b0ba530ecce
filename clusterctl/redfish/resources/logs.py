"""LogServices: the SEL and lifecycle/event logs of a system or manager, paged and bounded."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.resources.common import Ref, Resource
from clusterctl.redfish.resources.managers import list_managers
from clusterctl.redfish.resources.systems import get_system


class LogService(Resource):
    entries: Ref | None = Field(default=None, alias="Entries")
    max_records: int | None = Field(default=None, alias="MaxNumberOfRecords")
    overwrite_policy: str | None = Field(default=None, alias="OverWritePolicy")


class LogEntry(Resource):
    created: str | None = Field(default=None, alias="Created")
    severity: str | None = Field(default=None, alias="Severity")
    message: str | None = Field(default=None, alias="Message")
    message_id: str | None = Field(default=None, alias="MessageId")
    entry_type: str | None = Field(default=None, alias="EntryType")
    sensor_type: str | None = Field(default=None, alias="SensorType")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "severity": self.severity,
            "message_id": self.message_id,
            "message": self.message,
        }


async def log_services(client: RedfishClient, owner: dict[str, Any]) -> list[LogService]:
    """Log services of a ComputerSystem or Manager (raw resource dict)."""
    uri = odata_id(owner.get("LogServices"))
    if not uri:
        return []
    return [LogService.model_validate(m) for m in await client.members(uri)]


async def entries(client: RedfishClient, service: LogService, *, limit: int = 100) -> list[LogEntry]:
    """Up to `limit` entries, following nextLink pages (SELs hold thousands; never fetch unbounded)."""
    if service.entries is None or not service.entries.odata_id:
        return []
    return [LogEntry.model_validate(m) for m in await client.members(service.entries.odata_id, limit=limit)]


async def recent_entries(client: RedfishClient, *, service: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` entries of every log service of the system and its managers (`service`: only
    the one with that Id); a service both list (iDRAC's lifecycle log) is read once."""
    owners = [(await get_system(client)).model_dump(by_alias=True)]
    owners += [m.model_dump(by_alias=True) for m in await list_managers(client)]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for owner in owners:
        for svc in await log_services(client, owner):
            if svc.odata_id in seen or (service and svc.id != service):
                continue
            seen.add(svc.odata_id or "")
            for entry in await entries(client, svc, limit=limit):
                out.append({"service": svc.id, **entry.summary()})
    return out
