"""Stage `boot`: install the node's OS, then wait until it answers.

Runs only for nodes whose inventory names an OS (`software.os`) or an installer image
(`software.os_image`); an OS that already answers (its SSH port accepts a connection) is left alone, so
a re-run reinstalls nothing.

With `os_image` the BMC mounts the ISO as virtual media, the next boot (only) is overridden to the
virtual CD, the server is power-cycled, and the media is ejected once the installed OS answers: the
installer reboots into the disk because the override was for one boot. Without it the one-time override
is `--boot-via` (PXE by default) and the site's boot server does the rest.

The install is watched over SSH, not over the BMC. What a real iDRAC reports while an installer runs
does not say when it has finished: `BootProgress.LastState` reads `OSRunning` for the installer as for the
installed OS, and the OS name in the ComputerSystem comes from an agent (iDRAC Service Module) a fresh
install does not have. The installed OS accepting the site's SSH key and host key is the one signal that
means "installed and reachable", and it is what the next stages need. A wrong or unreachable image URL is
refused by the BMC when it is inserted (iDRAC connects to the share on InsertMedia), so that node fails
at once with the BMC's message and the rest of the fleet goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from clusterctl.errors import BMCRequestFailed, NodeCheckFailed
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.provision.reboot import reboot
from clusterctl.redfish.resources.managers import (
    VirtualMedia,
    boot_once_from_iso,
    cd_slot,
    eject_media,
    list_managers,
    media_slots,
)
from clusterctl.redfish.resources.systems import set_boot_override
from clusterctl.ssh.probe import ssh_problem

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext
    from clusterctl.redfish.client import RedfishClient

STAGE = "boot"


def _not_applicable(ctx: NodeContext) -> str | None:
    if not ctx.node.software.os and not ctx.node.software.os_image:
        return "the inventory names no OS to install (software.os, software.os_image)"
    return None


def _via(ctx: NodeContext) -> str:
    return "virtual media" if ctx.node.software.os_image else ctx.tuning.boot_via


async def _os_down(ctx: NodeContext) -> str | None:
    return await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)


async def plan(ctx: NodeContext) -> dict[str, Any]:
    why = _not_applicable(ctx)
    if why:
        return {"skip": why}
    down = await _os_down(ctx)
    return {"change": {"install": ctx.node.software.os or ctx.node.software.os_image, "via": _via(ctx)}} \
        if down else {"change": {}}


async def _insert(ctx: NodeContext, client: RedfishClient, image: str) -> VirtualMedia:
    """The ISO in the CD slot and a one-time boot from it; media a crashed run left there is ejected first."""
    system = await ctx.system()
    manager = (await list_managers(client))[0]
    slot = cd_slot(await media_slots(client, system, manager))
    if slot is not None and slot.inserted:
        await eject_media(client, slot)
    try:
        return await boot_once_from_iso(client, system, manager, image)
    except BMCRequestFailed as exc:
        raise NodeCheckFailed(f"the BMC could not mount the OS image {image}: {exc}") from None


async def run(ctx: NodeContext) -> StageResult:
    why = _not_applicable(ctx)
    if why:
        return skipped(why)
    if await _os_down(ctx) is None:
        if ctx.node.software.os_image and _install_unfinished(ctx):
            await _eject_leftover(ctx)
        await ctx.journal.close_open(ctx.name, STAGE, "reconciled", observed="OS answers")
        return done("OS already answers")
    client = await ctx.bmc()
    image, via = ctx.node.software.os_image, _via(ctx)
    await ctx.journal.intent(ctx.name, STAGE, "install", {"os": ctx.node.software.os, "via": via, "image": image})
    slot = None
    try:
        if image:
            slot = await _insert(ctx, client, image)
        else:
            await set_boot_override(client, await ctx.system(), ctx.tuning.boot_via)
        await reboot(ctx, f"OS install via {via}")
        await _wait_for_os(ctx)
        if slot is not None:
            await _eject(client, slot)
    except NodeCheckFailed as exc:
        await ctx.journal.outcome(ctx.name, STAGE, "install", "failed", error=str(exc))
        if slot is not None:
            with contextlib.suppress(BMCRequestFailed):  # best effort: the failure above is the reason
                await eject_media(client, slot)
        raise
    ctx.facts["os_installed_now"] = True
    await ctx.journal.outcome(ctx.name, STAGE, "install", "installed", os=ctx.node.software.os)
    return done(None, os=ctx.node.software.os, via=via, image=image)


async def _wait_for_os(ctx: NodeContext) -> None:
    deadline = time.monotonic() + ctx.tuning.os_deadline_s
    while (down := await _os_down(ctx)) is not None:
        if time.monotonic() >= deadline:
            raise NodeCheckFailed(f"OS not up {ctx.tuning.os_deadline_s:.0f} s after the install boot: {down}")
        await asyncio.sleep(ctx.tuning.poll_s)


def _install_unfinished(ctx: NodeContext) -> bool:
    """An earlier install that a crash interrupted or that failed (an eject the BMC refused among the
    reasons) may have left the ISO mounted."""
    last = ctx.journal.last_outcome(ctx.name, STAGE, "install")
    return ctx.journal.open_intent(ctx.name, STAGE, "install") is not None or \
        (last is not None and last.get("result") == "failed")


async def _eject_leftover(ctx: NodeContext) -> None:
    client = await ctx.bmc()
    manager = (await list_managers(client))[0]
    slot = cd_slot(await media_slots(client, await ctx.system(), manager))
    if slot is not None and slot.inserted:
        await _eject(client, slot)


async def _eject(client: RedfishClient, slot: VirtualMedia) -> None:
    """The ISO out again, so that a later boot cannot start the installer over the installed OS."""
    try:
        await eject_media(client, slot)
    except BMCRequestFailed as exc:
        raise NodeCheckFailed(f"the OS is installed but the BMC did not eject the OS image: {exc}") from None
