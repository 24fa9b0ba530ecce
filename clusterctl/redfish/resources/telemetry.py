"""One normalised view of a chassis's PSUs, fans, temperatures and power, whatever model the BMC speaks.

The 2020+ resources (PowerSubsystem, ThermalSubsystem, EnvironmentMetrics, Sensors) are preferred
because the legacy Power/Thermal are deprecated; each part falls back to the legacy resource on its
own, since BMCs in the field often implement one new subsystem and keep the other legacy.

Except where the BMC already sent a part in full: a chassis read with `$expand` (`node_telemetry`)
carries the legacy Power and Thermal inline, complete, while the new model would still cost a
request per collection and per PSU's metrics. The readings are the same, so what is in hand is
used, and a node's telemetry costs one request per chassis instead of dozens.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from clusterctl.errors import BMCRequestFailed
from clusterctl.redfish.client import RedfishClient
from clusterctl.redfish.resources.chassis import (
    Chassis,
    EnvironmentMetrics,
    Fan,
    Power,
    PowerSubsystem,
    PowerSupply,
    PowerSupplyMetrics,
    Sensor,
    Thermal,
    ThermalMetrics,
    ThermalSubsystem,
    follow,
    inline,
    list_chassis,
)

INLET_CONTEXTS = {"Intake", "Inlet", "Ambient"}
EXHAUST_CONTEXTS = {"Exhaust"}


class PsuReading(BaseModel):
    name: str
    health: str | None = None
    state: str | None = None
    input_watts: float | None = None
    capacity_watts: float | None = None


class FanReading(BaseModel):
    name: str
    rpm: float | None = None
    percent: float | None = None
    health: str | None = None


class TemperatureReading(BaseModel):
    name: str
    celsius: float | None
    context: str | None = None


class Telemetry(BaseModel):
    chassis: str | None = None
    source: dict[str, str] = {}  # part -> "subsystem" | "legacy" | "sensors" | "none"
    psus: list[PsuReading] = []
    fans: list[FanReading] = []
    temperatures: list[TemperatureReading] = []
    inlet_c: float | None = None
    exhaust_c: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None


def reports_power_or_cooling(chassis: Chassis) -> bool:
    """Enclosures and backplanes report nothing about power or cooling."""
    return bool(chassis.power or chassis.thermal or chassis.power_subsystem or chassis.thermal_subsystem)


async def node_telemetry(client: RedfishClient) -> list[Telemetry]:
    """The telemetry of every chassis of one BMC that reports power or cooling, in few requests."""
    chassis = [c for c in await list_chassis(client, expand=True) if reports_power_or_cooling(c)]
    return list(await asyncio.gather(*(telemetry(client, c) for c in chassis)))


async def telemetry(client: RedfishClient, chassis: Chassis) -> Telemetry:
    result = Telemetry(chassis=chassis.id)
    env_raw = inline(chassis.environment_metrics)
    # Read EnvironmentMetrics alongside unless it, or the legacy Power that also has the total, is in hand.
    read_env = env_raw is None and inline(chassis.power) is None
    extra = [_optional(follow(client, chassis.environment_metrics))] if read_env else []
    got = await asyncio.gather(_power(client, chassis, result), _thermal(client, chassis, result), *extra)
    env_raw = env_raw or (got[2] if read_env else None)
    env = EnvironmentMetrics.model_validate(env_raw) if env_raw else None
    if env is not None:
        result.power_watts = env.power_watts.reading if env.power_watts.reading is not None else result.power_watts
        if env.power_limit.set_point is not None:
            result.power_limit_watts = env.power_limit.set_point
    if result.power_watts is None:
        inputs = [p.input_watts for p in result.psus if p.input_watts is not None]
        result.power_watts = sum(inputs) if inputs else None
    _summarise_temperatures(result)
    return result


async def _optional(coro: Any) -> Any:
    """A resource the BMC links but cannot serve (404/501) counts as absent, not as a failure."""
    try:
        return await coro
    except BMCRequestFailed as exc:
        if exc.status in (404, 405, 501):
            return None
        raise


async def _power(client: RedfishClient, chassis: Chassis, out: Telemetry) -> None:
    legacy_inline = inline(chassis.power)
    if legacy_inline is not None:
        _legacy_power(legacy_inline, out)
        return
    sub_raw = await _optional(follow(client, chassis.power_subsystem))
    if sub_raw:
        sub = PowerSubsystem.model_validate(sub_raw)
        if sub.power_supplies and sub.power_supplies.odata_id:
            supplies = [
                PowerSupply.model_validate(m)
                for m in await client.members(sub.power_supplies.odata_id, expand=True)
            ]
            metrics = await asyncio.gather(*(_optional(follow(client, s.metrics)) for s in supplies))
            for supply, raw in zip(supplies, metrics, strict=True):
                m = PowerSupplyMetrics.model_validate(raw) if raw else None
                out.psus.append(
                    PsuReading(
                        name=supply.name or supply.id or "?",
                        health=supply.status.health,
                        state=supply.status.state,
                        input_watts=m.input_power.reading if m else None,
                        capacity_watts=supply.capacity_watts,
                    )
                )
            out.source["power"] = "subsystem"
            return
    legacy_raw = await _optional(follow(client, chassis.power))
    if not legacy_raw:
        out.source["power"] = "none"
        return
    _legacy_power(legacy_raw, out)


def _legacy_power(raw: dict[str, Any], out: Telemetry) -> None:
    legacy = Power.model_validate(raw)
    for i, psu in enumerate(legacy.power_supplies):
        out.psus.append(
            PsuReading(
                name=psu.name or psu.member_id or f"PSU{i}",
                health=psu.status.health,
                state=psu.status.state,
                input_watts=psu.input_watts,
                capacity_watts=psu.capacity_watts,
            )
        )
    if legacy.power_control:
        control = legacy.power_control[0]
        out.power_watts = control.consumed_watts
        out.power_limit_watts = control.limit.limit_watts
    out.source["power"] = "legacy"


async def _thermal(client: RedfishClient, chassis: Chassis, out: Telemetry) -> None:
    legacy_inline = inline(chassis.thermal)
    sub_raw = None if legacy_inline is not None else await _optional(follow(client, chassis.thermal_subsystem))
    got_fans = got_temps = False
    if sub_raw:
        sub = ThermalSubsystem.model_validate(sub_raw)
        if sub.fans and sub.fans.odata_id:
            for fan in (Fan.model_validate(m) for m in await client.members(sub.fans.odata_id, expand=True)):
                out.fans.append(
                    FanReading(
                        name=fan.name or fan.id or "?",
                        rpm=fan.speed.rpm,
                        percent=fan.speed.reading,
                        health=fan.status.health,
                    )
                )
            got_fans = True
        metrics_raw = await _optional(follow(client, sub.thermal_metrics))
        if metrics_raw:
            metrics = ThermalMetrics.model_validate(metrics_raw)
            for r in metrics.readings:
                out.temperatures.append(
                    TemperatureReading(
                        name=r.device_name or r.source or "?", celsius=r.reading, context=r.physical_context
                    )
                )
            if metrics.summary.intake and metrics.summary.intake.reading is not None:
                out.inlet_c = metrics.summary.intake.reading
            if metrics.summary.exhaust and metrics.summary.exhaust.reading is not None:
                out.exhaust_c = metrics.summary.exhaust.reading
            got_temps = True
    if not got_temps and legacy_inline is None and chassis.sensors and chassis.sensors.odata_id:
        listed = await _optional(client.members(chassis.sensors.odata_id, expand=True))
        sensors = [Sensor.model_validate(m) for m in listed or []]
        for s in sensors:
            if s.reading_type == "Temperature":
                out.temperatures.append(
                    TemperatureReading(name=s.name or s.id or "?", celsius=s.reading, context=s.physical_context)
                )
                got_temps = True
    if got_fans and got_temps:
        out.source["thermal"] = "subsystem"
        return
    legacy_raw = legacy_inline or await _optional(follow(client, chassis.thermal))
    if legacy_raw:
        legacy = Thermal.model_validate(legacy_raw)
        if not got_fans:
            for i, old in enumerate(legacy.fans):
                rpm = old.reading if (old.reading_units or "RPM") == "RPM" else None
                pct = old.reading if old.reading_units == "Percent" else None
                out.fans.append(
                    FanReading(
                        name=old.name or old.fan_name or old.member_id or f"Fan{i}",
                        rpm=rpm,
                        percent=pct,
                        health=old.status.health,
                    )
                )
        if not got_temps:
            for t in legacy.temperatures:
                out.temperatures.append(
                    TemperatureReading(name=t.name or "?", celsius=t.celsius, context=t.physical_context)
                )
    kinds = [k for k, used in (("subsystem", got_fans or got_temps), ("legacy", bool(legacy_raw))) if used]
    out.source["thermal"] = "mixed" if len(kinds) == 2 else (kinds[0] if kinds else "none")


def _summarise_temperatures(out: Telemetry) -> None:
    """Inlet/exhaust from PhysicalContext first, then from names ('Inlet Temp', 'Exhaust Temp')."""
    for reading in out.temperatures:
        if reading.celsius is None:
            continue
        name = reading.name.lower()
        if out.inlet_c is None and (reading.context in INLET_CONTEXTS or "inlet" in name or "intake" in name):
            out.inlet_c = reading.celsius
        if out.exhaust_c is None and (reading.context in EXHAUST_CONTEXTS or "exhaust" in name):
            out.exhaust_c = reading.celsius
