"""Stage `os`: configure the installed OS with playbooks/site.yml (ansible-runner), per host.

Needs SSH: a node whose SSH port does not answer is reported skipped with the reason (the lab
has no SSH servers yet), never passed. After a `boot` stage that installed the OS this run, a
silent SSH port is a failure instead: the install was supposed to bring it up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, skipped

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext


async def _ssh_problem(ctx: NodeContext) -> str | None:
    if ctx.hooks.os_installed is None:
        return "no OS-installed check configured"
    return await ctx.hooks.os_installed(ctx.node, ctx.tuning)


async def plan(ctx: NodeContext) -> dict[str, Any]:
    down = await _ssh_problem(ctx)
    return {"skip": f"SSH not reachable: {down}"} if down else {"change": {"playbook": "playbooks/site.yml"}}


async def run(ctx: NodeContext) -> StageResult:
    down = await _ssh_problem(ctx)
    if down:
        if ctx.facts.get("os_installed_now"):
            raise NodeCheckFailed(f"SSH not reachable after the OS install: {down}")
        return skipped(f"SSH not reachable: {down}")
    if ctx.hooks.configure_os is None:
        return skipped("no OS configuration hook")
    return await ctx.hooks.configure_os(ctx)
