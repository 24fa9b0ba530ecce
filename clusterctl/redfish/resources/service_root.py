"""The service root: what the BMC is and which services it offers."""

from __future__ import annotations

from pydantic import Field

from clusterctl.redfish.resources.common import Ref, Resource


class ServiceRoot(Resource):
    redfish_version: str | None = Field(default=None, alias="RedfishVersion")
    uuid: str | None = Field(default=None, alias="UUID")
    product: str | None = Field(default=None, alias="Product")
    vendor: str | None = Field(default=None, alias="Vendor")
    systems: Ref | None = Field(default=None, alias="Systems")
    chassis: Ref | None = Field(default=None, alias="Chassis")
    managers: Ref | None = Field(default=None, alias="Managers")
    update_service: Ref | None = Field(default=None, alias="UpdateService")
    task_service: Ref | None = Field(default=None, alias="TaskService")
    session_service: Ref | None = Field(default=None, alias="SessionService")
    registries: Ref | None = Field(default=None, alias="Registries")
