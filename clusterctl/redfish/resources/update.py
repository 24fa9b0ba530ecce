"""UpdateService: the firmware inventory, and the two DMTF ways to update (SimpleUpdate by URI,
multipart HTTP push of an image file). Both may answer with a task to wait on (tasks.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.resources.common import Resource, action_target, allowable, operation_apply_times

UPDATE_SERVICE = "/redfish/v1/UpdateService"


class FirmwareComponent(Resource):
    version: str | None = Field(default=None, alias="Version")
    updateable: bool | None = Field(default=None, alias="Updateable")
    software_id: str | None = Field(default=None, alias="SoftwareId")
    release_date: str | None = Field(default=None, alias="ReleaseDate")
    manufacturer: str | None = Field(default=None, alias="Manufacturer")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "updateable": self.updateable,
            "health": self.status.health,
        }


async def update_service(client: RedfishClient) -> dict[str, Any]:
    """Read once per session: where to push images and list firmware does not move (a firmware run
    read it before every push and every inventory, 7 requests per node)."""
    if "UpdateService" not in client.memo:
        client.memo["UpdateService"] = await client.get(odata_id(client.root.get("UpdateService")) or UPDATE_SERVICE)
    return dict(client.memo["UpdateService"])


async def firmware_inventory(client: RedfishClient) -> list[FirmwareComponent]:
    service = await update_service(client)
    uri = odata_id(service.get("FirmwareInventory"))
    if not uri:
        return []
    return [FirmwareComponent.model_validate(m) for m in await client.members(uri)]


async def simple_update(
    client: RedfishClient,
    image_uri: str,
    *,
    targets: list[str] | None = None,
    protocol: str | None = None,
    apply_time: str | None = None,
) -> httpx.Response:
    """Ask the BMC to fetch `image_uri` itself; the response may carry a task (202 + Location).

    Provisioning never uses it: the bytes a BMC fetches are not the bytes the controller checked
    (provision/images.py pushes its verified copy with `multipart_push` instead).
    """
    service = await update_service(client)
    target, action = action_target(service, "UpdateService.SimpleUpdate")
    if not target:
        raise BMCRequestFailed("UpdateService offers no SimpleUpdate action", bmc=client.name)
    body: dict[str, Any] = {"ImageURI": image_uri}
    # iDRAC rejects a SimpleUpdate without TransferProtocol even when the URI's scheme says it
    # (Dell's SimpleUpdate examples always send it); DSP0268 names the values in upper case.
    protocol = protocol or urlsplit(image_uri).scheme.upper() or None
    if protocol:
        offered = allowable(action, "TransferProtocol")
        if offered and protocol not in offered:
            raise BMCRequestFailed(f"TransferProtocol {protocol} not offered ({', '.join(offered)})", bmc=client.name)
        body["TransferProtocol"] = protocol
    if targets:
        body["Targets"] = targets
    if apply_time:
        supported = operation_apply_times(action)
        if supported and apply_time not in supported:
            raise BMCRequestFailed(f"apply time {apply_time} not supported ({', '.join(supported)})", bmc=client.name)
        body["@Redfish.OperationApplyTime"] = apply_time
    return await client.post(target, body)


async def multipart_push(
    client: RedfishClient,
    image: Path,
    *,
    targets: list[str] | None = None,
    apply_time: str = "Immediate",
) -> httpx.Response:
    """Upload an image to MultipartHttpPushUri (DSP0266 §'Multipart HTTP push updates').

    The file is streamed from disk, never held whole: an HGX bundle is over a gigabyte and a wave
    pushes to hundreds of BMCs at once. A retried POST (503 before the BMC took it) reads the file
    again from its start (httpx seeks a file field back to 0 each time it renders the body).
    """
    service = await update_service(client)
    uri = service.get("MultipartHttpPushUri")
    if not uri:
        raise BMCRequestFailed("UpdateService offers no MultipartHttpPushUri", bmc=client.name)
    params: dict[str, Any] = {"@Redfish.OperationApplyTime": apply_time}
    if targets:
        params["Targets"] = targets
    with image.open("rb") as file:
        files = {
            "UpdateParameters": (None, json.dumps(params), "application/json"),
            "UpdateFile": (image.name, file, "application/octet-stream"),
        }
        return await client.request("POST", str(uri), files=files)
