"""Chassis and its power/thermal resources, in both the legacy (Power, Thermal) and the
2020+ model (PowerSubsystem, ThermalSubsystem, EnvironmentMetrics, Sensors).

Fleets mix BMC generations, so both shapes are parsed; `telemetry.py` picks and normalises.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish.client import RedfishClient, odata_id
from clusterctl.redfish.resources.common import RedfishModel, Ref, Resource, Status

CHASSIS = "/redfish/v1/Chassis"


class Chassis(Resource):
    chassis_type: str | None = Field(default=None, alias="ChassisType")
    manufacturer: str | None = Field(default=None, alias="Manufacturer")
    model: str | None = Field(default=None, alias="Model")
    serial: str | None = Field(default=None, alias="SerialNumber")
    power_state: str | None = Field(default=None, alias="PowerState")
    power: Ref | None = Field(default=None, alias="Power")
    thermal: Ref | None = Field(default=None, alias="Thermal")
    power_subsystem: Ref | None = Field(default=None, alias="PowerSubsystem")
    thermal_subsystem: Ref | None = Field(default=None, alias="ThermalSubsystem")
    environment_metrics: Ref | None = Field(default=None, alias="EnvironmentMetrics")
    sensors: Ref | None = Field(default=None, alias="Sensors")


# -- legacy Power / Thermal (Power.v1, Thermal.v1; deprecated in 2020.4 but still the common case)


class PowerLimit(RedfishModel):
    limit_watts: float | None = Field(default=None, alias="LimitInWatts")


class PowerControl(RedfishModel):
    name: str | None = Field(default=None, alias="Name")
    consumed_watts: float | None = Field(default=None, alias="PowerConsumedWatts")
    capacity_watts: float | None = Field(default=None, alias="PowerCapacityWatts")
    limit: PowerLimit = Field(default_factory=PowerLimit, alias="PowerLimit")


class LegacyPowerSupply(RedfishModel):
    name: str | None = Field(default=None, alias="Name")
    member_id: str | None = Field(default=None, alias="MemberId")
    status: Status = Field(default_factory=Status, alias="Status")
    input_watts: float | None = Field(default=None, alias="PowerInputWatts")
    output_watts: float | None = Field(default=None, alias="LastPowerOutputWatts")
    capacity_watts: float | None = Field(default=None, alias="PowerCapacityWatts")
    line_input_voltage: float | None = Field(default=None, alias="LineInputVoltage")


class Power(Resource):
    power_control: list[PowerControl] = Field(default_factory=list, alias="PowerControl")
    power_supplies: list[LegacyPowerSupply] = Field(default_factory=list, alias="PowerSupplies")


class LegacyFan(RedfishModel):
    name: str | None = Field(default=None, alias="Name")
    fan_name: str | None = Field(default=None, alias="FanName")  # Thermal.v1_0 spelling
    member_id: str | None = Field(default=None, alias="MemberId")
    status: Status = Field(default_factory=Status, alias="Status")
    reading: float | None = Field(default=None, alias="Reading")
    reading_units: str | None = Field(default=None, alias="ReadingUnits")


class LegacyTemperature(RedfishModel):
    name: str | None = Field(default=None, alias="Name")
    status: Status = Field(default_factory=Status, alias="Status")
    celsius: float | None = Field(default=None, alias="ReadingCelsius")
    physical_context: str | None = Field(default=None, alias="PhysicalContext")
    upper_critical: float | None = Field(default=None, alias="UpperThresholdCritical")


class Thermal(Resource):
    fans: list[LegacyFan] = Field(default_factory=list, alias="Fans")
    temperatures: list[LegacyTemperature] = Field(default_factory=list, alias="Temperatures")


# -- PowerSubsystem / ThermalSubsystem / EnvironmentMetrics / Sensors


class Reading(RedfishModel):
    reading: float | None = Field(default=None, alias="Reading")


class FanSpeed(RedfishModel):
    reading: float | None = Field(default=None, alias="Reading")  # percent
    rpm: float | None = Field(default=None, alias="SpeedRPM")


class PowerSubsystem(Resource):
    capacity_watts: float | None = Field(default=None, alias="CapacityWatts")
    power_supplies: Ref | None = Field(default=None, alias="PowerSupplies")


class PowerSupply(Resource):
    capacity_watts: float | None = Field(default=None, alias="PowerCapacityWatts")
    metrics: Ref | None = Field(default=None, alias="Metrics")


class PowerSupplyMetrics(Resource):
    input_power: Reading = Field(default_factory=Reading, alias="InputPowerWatts")
    output_power: Reading = Field(default_factory=Reading, alias="OutputPowerWatts")


class ThermalSubsystem(Resource):
    fans: Ref | None = Field(default=None, alias="Fans")
    thermal_metrics: Ref | None = Field(default=None, alias="ThermalMetrics")


class Fan(Resource):
    speed: FanSpeed = Field(default_factory=FanSpeed, alias="SpeedPercent")


class TemperatureReading(RedfishModel):
    device_name: str | None = Field(default=None, alias="DeviceName")
    physical_context: str | None = Field(default=None, alias="PhysicalContext")
    source: str | None = Field(default=None, alias="DataSourceUri")
    reading: float | None = Field(default=None, alias="Reading")


class TemperatureSummary(RedfishModel):
    intake: Reading | None = Field(default=None, alias="Intake")
    exhaust: Reading | None = Field(default=None, alias="Exhaust")
    ambient: Reading | None = Field(default=None, alias="Ambient")
    internal: Reading | None = Field(default=None, alias="Internal")


class ThermalMetrics(Resource):
    readings: list[TemperatureReading] = Field(default_factory=list, alias="TemperatureReadingsCelsius")
    summary: TemperatureSummary = Field(default_factory=TemperatureSummary, alias="TemperatureSummaryCelsius")


class PowerLimitWatts(RedfishModel):
    set_point: float | None = Field(default=None, alias="SetPoint")
    allowable_max: float | None = Field(default=None, alias="AllowableMax")


class EnvironmentMetrics(Resource):
    power_watts: Reading = Field(default_factory=Reading, alias="PowerWatts")
    power_limit: PowerLimitWatts = Field(default_factory=PowerLimitWatts, alias="PowerLimitWatts")
    temperature: Reading = Field(default_factory=Reading, alias="TemperatureCelsius")


class Sensor(Resource):
    reading: float | None = Field(default=None, alias="Reading")
    reading_type: str | None = Field(default=None, alias="ReadingType")
    reading_units: str | None = Field(default=None, alias="ReadingUnits")
    physical_context: str | None = Field(default=None, alias="PhysicalContext")


async def list_chassis(client: RedfishClient, *, expand: bool = False) -> list[Chassis]:
    """Every chassis; with `expand`, each with its subordinate resources inline where the BMC can.

    One level of `$expand` on a chassis brings its Power, Thermal, EnvironmentMetrics and the
    subsystems' top level in the chassis's own answer: the telemetry of a node in one request.
    """
    uri = odata_id(client.root.get("Chassis")) or CHASSIS
    if not (expand and client.expand_query):
        return [Chassis.model_validate(m) for m in await client.members(uri)]
    uris = [u async for u in client.member_uris(uri)]
    return [Chassis.model_validate(b) for b in await asyncio.gather(*(client.get_expanded(u) for u in uris))]


def inline(ref: Ref | None) -> dict[str, Any] | None:
    """The resource itself when the BMC expanded the reference (`$expand`), else None."""
    if ref is None or not ref.odata_id:
        return None
    if all(key.startswith("@") for key in ref.model_extra or {}):
        return None
    return ref.model_dump(by_alias=True)


async def follow(client: RedfishClient, ref: Ref | None) -> dict[str, Any] | None:
    """The referenced resource: the copy already expanded inline, or one GET."""
    if ref is None or not ref.odata_id:
        return None
    return inline(ref) or await client.get(ref.odata_id)


async def power_cycle_chassis(client: RedfishClient, system_chassis: str | None = None) -> str:
    """DMTF's AC power cycle: Chassis.Reset with PowerCycle, which DMTF defines as a full power
    removal followed by a power restore. On the chassis the system links to, else the first one.
    Returns the action sent."""
    uri = system_chassis or next((c.odata_id for c in await list_chassis(client) if c.odata_id), None)
    if uri is None:
        raise BMCRequestFailed("the BMC lists no chassis to power cycle", bmc=client.name)
    body = await client.get(uri)
    reset = (body.get("Actions") or {}).get("#Chassis.Reset")
    allowed = (reset or {}).get("ResetType@Redfish.AllowableValues")
    if not isinstance(reset, dict) or not reset.get("target") or (allowed is not None
                                                                 and "PowerCycle" not in allowed):
        raise BMCRequestFailed(f"chassis {uri} offers no Chassis.Reset PowerCycle: remove and restore the "
                               "server's power by hand", bmc=client.name)
    await client.post(str(reset["target"]), {"ResetType": "PowerCycle"})
    return "Chassis.Reset PowerCycle"
