"""Stage `bios`: apply the node's BIOS attributes through the pending settings and one reboot.

observe (current and pending attributes, the BMC's job queue) -> diff -> act (stage the
difference, queue the iDRAC BIOS configuration job unless one is already queued, reboot) ->
confirm (re-read: every attribute as desired). A run killed after the job was queued finds the
job on resume and reboots for it instead of staging again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.provision.reboot import reboot
from clusterctl.redfish.oem import idrac
from clusterctl.redfish.resources.bios import diff, read_bios, stage_attributes

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext
    from clusterctl.redfish.resources.bios import Bios

STAGE = "bios"
KEY = "bios"


async def _current(ctx: NodeContext) -> tuple[Bios, dict[str, Any]]:
    client = await ctx.bmc()
    bios = await read_bios(client, await ctx.system())
    return bios, diff(bios.attributes, dict(ctx.node.bios))


async def plan(ctx: NodeContext) -> dict[str, Any]:
    if not ctx.node.bios:
        return {"skip": "no BIOS attributes in the inventory"}
    bios, change = await _current(ctx)
    return {"change": {k: {"from": bios.attributes.get(k), "to": v} for k, v in change.items()}}


async def _queued_job(ctx: NodeContext) -> str | None:
    if not ctx.idrac:
        return None
    return next(iter(await idrac.jobs_in_flight(await ctx.bmc(), "BIOSConfiguration")), None)


async def run(ctx: NodeContext) -> StageResult:
    if not ctx.node.bios:
        return skipped("no BIOS attributes in the inventory")
    bios, change = await _current(ctx)
    if not change:
        await ctx.journal.close_open(ctx.name, STAGE, "reconciled", observed="attributes as desired")
        return done("already as desired")
    client = await ctx.bmc()
    job = await _queued_job(ctx) if ctx.journal.open_intent(ctx.name, STAGE, KEY) else None
    if job is None:
        await ctx.journal.intent(ctx.name, STAGE, KEY, {"attributes": change})
        if ctx.idrac:
            _, job = await idrac.configure_bios(client, bios, dict(ctx.node.bios),
                                                deadline_s=ctx.tuning.job_deadline_s, poll=ctx.poll(STAGE, "lc"))
        else:
            times = bios.apply_times()
            await stage_attributes(client, bios, dict(ctx.node.bios),
                                   apply_time="OnReset" if "OnReset" in times else None)
        await ctx.journal.event("bios.queued", node=ctx.name, stage=STAGE, payload={"key": KEY, "job": job})
    elif ctx.journal.open_intent(ctx.name, STAGE, KEY) is None:
        await ctx.journal.intent(ctx.name, STAGE, KEY, {"attributes": change, "adopted_job": job})
    if job is not None:
        await idrac.wait_job(client, job, deadline_s=ctx.tuning.job_deadline_s, poll=ctx.poll(STAGE, "scheduled"),
                             stop_at="scheduled")
    await reboot(ctx, "BIOS settings")
    if job is not None:
        await idrac.wait_job(client, job, deadline_s=ctx.tuning.job_deadline_s, poll=ctx.poll(STAGE, "completed"))
    _, left = await _current(ctx)
    if left:
        await ctx.journal.outcome(ctx.name, STAGE, KEY, "failed", not_applied=left)
        raise NodeCheckFailed(f"BIOS attributes not applied after the reboot: {', '.join(sorted(left))}")
    await ctx.journal.outcome(ctx.name, STAGE, KEY, "applied", attributes=change)
    return done(None, changed=change)
