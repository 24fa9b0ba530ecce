"""Rebooting or AC-cycling a node inside the power gate, and waiting for it to come back, with intent
and outcome.

A reboot a killed run left in flight (the server still PoweringOn) is waited out, not repeated:
the observation decides, the journal only tells the next run what it may find.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterctl.errors import TaskFailed
from clusterctl.redfish.cadence import Cadence, Wait
from clusterctl.redfish.resources.systems import ComputerSystem, power

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext

TRANSITIONS = ("PoweringOn", "PoweringOff")


async def wait_powered_on(ctx: NodeContext, *, what: str, poll: float | Cadence,
                          want: str = "On") -> ComputerSystem:
    """Poll until the server reports PowerState `want`; the BMC may drop out meanwhile."""
    wait = Wait(poll, ctx.tuning.reboot_deadline_s)
    while True:
        system = await ctx.look_system()
        state = (system.power_state or "unknown") if system is not None else "BMC unreachable"
        if system is not None and state == want:
            wait.done()
            return system
        if not await wait.sleep():
            raise TaskFailed(f"{what}: server still {state} after {ctx.tuning.reboot_deadline_s:.0f} s",
                             bmc=ctx.name)


async def settle_power(ctx: NodeContext, system: ComputerSystem) -> ComputerSystem:
    """A server caught mid-transition (a reboot from a killed run) holds a reboot slot until it is On."""
    if system.power_state not in TRANSITIONS:
        return system
    ctx.warmed_up()
    async with ctx.gate.rebooting(ctx.node, waiting=ctx.step_out):
        system = await wait_powered_on(ctx, what="reboot in progress", poll=ctx.tuning.poll_s)
    await ctx.step_in()
    return system


async def reboot(ctx: NodeContext, reason: str) -> ComputerSystem:
    """Power-cycle (or power on) within the rack's limits and wait until the server is On again.

    The node leaves the warm-up group once its reset is sent, or, with its place in the run's
    concurrency, before it queues for a busy slot (places.py): the nodes that group lets in next start
    with a burst of requests, which would otherwise land between this node's slot and its reset. The
    slot is given back as soon as the server is On, before the outcome is written: the next node's
    reset need not wait on the commit.
    """
    client = await ctx.bmc()
    async with ctx.gate.rebooting(ctx.node, waiting=ctx.step_out) as rack:
        system = await ctx.system()
        estimate = rack.estimate_w(rack.rebooting) if rack is not None else None
        await ctx.journal.intent(ctx.name, ctx.stage, "reboot", {
            "reason": reason, "rack": ctx.node.rack, "power_state": system.power_state,
            "rack_estimated_w": estimate, "rack_rebooting": len(rack.rebooting) if rack else None,
        })
        if system.power_state in TRANSITIONS:
            action = "waited for a transition in progress"
        else:
            action = await power(client, system, "on" if system.power_state == "Off" else "cycle")
        ctx.warmed_up()
        system = await wait_powered_on(ctx, what=f"reboot for {reason}", poll=ctx.poll("reboot", reason))
    await ctx.step_in()
    await ctx.journal.outcome(ctx.name, ctx.stage, "reboot", "rebooted", action=action,
                              power_state=system.power_state)
    return system


async def ac_cycle(ctx: NodeContext, reason: str) -> ComputerSystem:
    """A virtual AC power cycle within the rack's limits: power off, cut and restore all power (the
    iDRAC restarts with it), and wait until the server is On again.

    It holds a reboot slot like a reboot: the rack sees the same inrush when the server comes back.
    A kill between the intent and the outcome leaves the component's job waiting for the cycle, so
    the next run finds it waiting and cycles again: a cycle applies nothing twice.
    """
    from clusterctl.redfish.client import odata_id
    from clusterctl.redfish.oem import idrac
    from clusterctl.redfish.resources.chassis import power_cycle_chassis

    client = await ctx.bmc()
    async with ctx.gate.rebooting(ctx.node, waiting=ctx.step_out):
        system = await ctx.system()
        await ctx.journal.intent(ctx.name, ctx.stage, "ac_cycle", {"reason": reason, "rack": ctx.node.rack,
                                                                   "power_state": system.power_state})
        if ctx.idrac:
            if system.power_state != "Off":
                await power(client, system, "off")  # Dell's ExtendedReset takes a server that is off
                await wait_powered_on(ctx, what=f"power off before the AC cycle for {reason}",
                                      poll=ctx.poll("reboot", reason), want="Off")
            action = await idrac.ac_power_cycle(client)
        else:
            links = ((system.model_extra or {}).get("Links") or {}).get("Chassis") or []
            action = await power_cycle_chassis(client, next((odata_id(c) for c in links if odata_id(c)), None))
        system = await wait_powered_on(ctx, what=f"AC power cycle for {reason}", poll=ctx.poll("reboot", reason))
    await ctx.step_in()
    await ctx.journal.outcome(ctx.name, ctx.stage, "ac_cycle", "cycled", action=action)
    return system
