"""Stage `bios`: apply the node's BIOS attributes through the pending settings and one reboot.

observe (current and pending attributes, the BMC's job queue) -> diff -> act (stage the
difference, queue the iDRAC BIOS configuration job, reboot) -> confirm (re-read: every attribute
as desired). A run killed after recording its job follows that job on resume instead of staging
again; any other pending BIOS or reboot job is stale (a killed run's that was never recorded, an
operator's) and is deleted before staging, never adopted.
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


async def _our_queued_job(ctx: NodeContext) -> str | None:
    """The job an earlier run queued and recorded (`bios.queued`), while the iDRAC still holds it.
    Any other pending BIOS job is not ours to follow: `configure_bios` deletes it."""
    recorded = [str(n.payload["job"]) for n in ctx.journal.notes(ctx.name, STAGE) if n.payload.get("job")]
    if not ctx.idrac or not recorded:
        return None
    return recorded[-1] if recorded[-1] in await idrac.config_jobs_in_flight(await ctx.bmc()) else None


def _via(ctx: NodeContext) -> str:
    """How the node's BIOS profile asks to be applied (`apply_with`): settings, or one SCP import."""
    profile = ctx.inventory.bios_profiles.get(ctx.node.bios_profile or "")
    return "scp" if profile is not None and profile.apply_with == "scp" else "settings"


async def run(ctx: NodeContext) -> StageResult:
    if not ctx.node.bios:
        return skipped("no BIOS attributes in the inventory")
    bios, change = await _current(ctx)
    if not change:
        await ctx.journal.close_open(ctx.name, STAGE, "reconciled", observed="attributes as desired")
        return done("already as desired")
    client = await ctx.bmc()
    job = await _our_queued_job(ctx) if ctx.journal.open_intent(ctx.name, STAGE, KEY) else None
    if job is None:
        await ctx.journal.intent(ctx.name, STAGE, KEY, {"attributes": change})
        if ctx.idrac:
            _, job, deleted = await idrac.configure_bios(client, bios, dict(ctx.node.bios),
                                                         deadline_s=ctx.tuning.job_deadline_s,
                                                         poll=ctx.poll(STAGE, "lc"), via=_via(ctx))
            if deleted:
                await ctx.journal.event("bios.stale_jobs_deleted", node=ctx.name, stage=STAGE,
                                        payload={"jobs": deleted})
        else:
            times = bios.apply_times()
            await stage_attributes(client, bios, dict(ctx.node.bios),
                                   apply_time="OnReset" if "OnReset" in times else None)
        await ctx.journal.event("bios.queued", node=ctx.name, stage=STAGE, payload={"key": KEY, "job": job})
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
