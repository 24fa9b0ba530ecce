"""Stage `validate`: hand the node to the validation hook; a node is ready when it passes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.provision.context import StageResult, skipped

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext


async def plan(ctx: NodeContext) -> dict[str, Any]:
    return {"change": {"validate": True}} if ctx.hooks.validate else {"skip": "no validation hook"}


async def run(ctx: NodeContext) -> StageResult:
    if ctx.hooks.validate is None:
        return skipped("no validation hook configured: ready unvalidated")
    return await ctx.hooks.validate(ctx)
