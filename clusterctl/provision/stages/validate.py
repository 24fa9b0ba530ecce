"""Stage `validate`: the node-side checks of `clusterctl validate`; a node is ready when it passes.

Imported, not looked up: a validation package that fails to import stops provisioning at start,
instead of letting every node through as ready unvalidated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.validate.provision_hook import validate_node

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext, StageResult


async def plan(ctx: NodeContext) -> dict[str, Any]:
    return {"change": {"validate": True}}


async def run(ctx: NodeContext) -> StageResult:
    return await validate_node(ctx)
