"""Stage `boot`: one-time boot override to the installer, power cycle, wait until the OS answers.

Runs only for nodes whose inventory names an OS to install (`software.os`); an OS that already
answers (its SSH port accepts a connection) is left alone, so a re-run reinstalls nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.provision.reboot import reboot
from clusterctl.redfish.resources.systems import set_boot_override
from clusterctl.ssh.probe import ssh_problem

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext

STAGE = "boot"


def _not_applicable(ctx: NodeContext) -> str | None:
    if not ctx.node.software.os:
        return "the inventory names no OS to install (software.os)"
    return None


async def _os_down(ctx: NodeContext) -> str | None:
    return await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)


async def plan(ctx: NodeContext) -> dict[str, Any]:
    why = _not_applicable(ctx)
    if why:
        return {"skip": why}
    down = await _os_down(ctx)
    return {"change": {"install": ctx.node.software.os, "via": ctx.tuning.boot_via}} if down else {"change": {}}


async def run(ctx: NodeContext) -> StageResult:
    why = _not_applicable(ctx)
    if why:
        return skipped(why)
    if await _os_down(ctx) is None:
        await ctx.journal.close_open(ctx.name, STAGE, "reconciled", observed="OS answers")
        return done("OS already answers")
    client = await ctx.bmc()
    await ctx.journal.intent(ctx.name, STAGE, "install", {"os": ctx.node.software.os, "via": ctx.tuning.boot_via})
    await set_boot_override(client, await ctx.system(), ctx.tuning.boot_via)
    await reboot(ctx, f"OS install via {ctx.tuning.boot_via}")
    deadline = time.monotonic() + ctx.tuning.os_deadline_s
    while (down := await _os_down(ctx)) is not None:
        if time.monotonic() >= deadline:
            await ctx.journal.outcome(ctx.name, STAGE, "install", "failed", error=down)
            raise NodeCheckFailed(f"OS not up {ctx.tuning.os_deadline_s:.0f} s after the install boot: {down}")
        await asyncio.sleep(ctx.tuning.poll_s)
    ctx.facts["os_installed_now"] = True
    await ctx.journal.outcome(ctx.name, STAGE, "install", "installed", os=ctx.node.software.os)
    return done(None, os=ctx.node.software.os, via=ctx.tuning.boot_via)
