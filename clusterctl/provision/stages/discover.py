"""Stage `discover`: reach the BMC, read what the server is, and compare it with the inventory.

A mismatch (model, GPU count, PSU count) fails the node with every difference named. A failed
PSU fails it too: flashing firmware and power-cycling on lost power redundancy risks a brick,
so the power check belongs before any side effect, here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, done
from clusterctl.provision.reboot import settle_power
from clusterctl.redfish.client import odata_id
from clusterctl.redfish.resources.chassis import Power, list_chassis

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext
    from clusterctl.redfish import RedfishClient


async def observe(ctx: NodeContext) -> dict[str, Any]:
    client = await ctx.bmc()
    system = await ctx.system()
    facts: dict[str, Any] = {
        "model": system.model,
        "serial": system.serial,
        "power_state": system.power_state,
        "bios_version": system.bios_version,
    }
    raw = system.model_dump(by_alias=True)
    facts["gpus"] = await _gpu_count(client, raw)
    facts["macs"] = await _macs(client, raw)
    facts.update(await _power(client))
    ctx.facts["system"] = system
    return facts


async def _gpu_count(client: RedfishClient, system: dict[str, Any]) -> int | None:
    uri = odata_id(system.get("Processors"))
    if not uri:
        return None
    processors = await client.members(uri, expand=True)  # one request, not one per CPU and GPU
    return sum(1 for p in processors if str(p.get("ProcessorType", "")).upper() == "GPU")


async def _macs(client: RedfishClient, system: dict[str, Any]) -> list[str]:
    uri = odata_id(system.get("EthernetInterfaces"))
    if not uri:
        return []
    return [str(i["MACAddress"]) for i in await client.members(uri, expand=True) if i.get("MACAddress")]


async def _power(client: RedfishClient) -> dict[str, Any]:
    chassis = await list_chassis(client)
    for c in chassis:
        if c.power is None or not c.power.odata_id:
            continue
        power = Power.model_validate(await client.get(c.power.odata_id))
        watts = next((p.consumed_watts for p in power.power_control if p.consumed_watts is not None), None)
        failed = [p.member_id or p.name or "?" for p in power.power_supplies if p.status.health == "Critical"]
        return {"psus": len(power.power_supplies), "psus_failed": failed, "watts": watts}
    return {"psus": None, "psus_failed": [], "watts": None}


def mismatches(ctx: NodeContext, facts: dict[str, Any]) -> list[str]:
    hw = ctx.node.hardware
    found = []
    if hw.model and facts["model"] and hw.model.lower() not in str(facts["model"]).lower():
        found.append(f"model {facts['model']!r}, inventory says {hw.model!r}")
    if hw.gpu is not None and facts["gpus"] is not None and facts["gpus"] != hw.gpu.count:
        found.append(f"{facts['gpus']} GPUs visible, inventory says {hw.gpu.count}")
    if hw.psus is not None and facts["psus"] is not None and facts["psus"] != hw.psus:
        found.append(f"{facts['psus']} PSUs, inventory says {hw.psus}")
    if facts["psus_failed"]:
        found.append(f"failed PSU(s) {', '.join(facts['psus_failed'])}: power redundancy lost")
    return found


async def plan(ctx: NodeContext) -> dict[str, Any]:
    facts = await observe(ctx)
    return {"facts": facts, "mismatches": mismatches(ctx, facts)}


async def run(ctx: NodeContext) -> StageResult:
    facts = await observe(ctx)
    ctx.gate.measured(ctx.node, facts["watts"])
    problems = mismatches(ctx, facts)
    if problems:
        raise NodeCheckFailed("hardware differs from the inventory: " + "; ".join(problems))
    await settle_power(ctx, ctx.facts["system"])
    return done(None, **{k: v for k, v in facts.items() if k != "psus_failed"})
