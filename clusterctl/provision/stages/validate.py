"""Stage `validate`: the node-side checks of `clusterctl validate` for one freshly configured node.

Provisioning already read the BMC (power, PSUs) in `discover`, so this stage runs what only the
node can tell: GPUs through NVML, XIDs, InfiniBand and software versions, with the same agent,
rules and SSH path as `clusterctl validate` (`clusterctl.validate.run.validate_nodes`). A failing
check fails the stage with its reason; warnings let the node become ready and stay visible in the
store. Imported, not looked up: a validation package that cannot be imported stops provisioning at
its start instead of letting every node through as ready unvalidated.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, done, skipped
from clusterctl.ssh.probe import ssh_problem
from clusterctl.validate.evaluate import NODE_SIDE
from clusterctl.validate.run import Request, check_rows, validate_nodes

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext

REQUEST = Request(categories=NODE_SIDE, parallel=1)


async def plan(ctx: NodeContext) -> dict[str, Any]:
    return {"change": {"validate": True}}


async def run(ctx: NodeContext) -> StageResult:
    # As the `os` stage does: a node whose SSH does not answer is reported skipped, never passed.
    unreachable = await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)
    if unreachable:
        return skipped(f"the node-side checks need SSH: {unreachable}")
    report = await asyncio.to_thread(validate_nodes, ctx.inventory, [ctx.node], REQUEST)
    verdict = report.verdicts[0]
    rows = check_rows([verdict])
    run_id = ctx.journal.run_id
    await ctx.journal.write(lambda tx: tx.record_checks(rows, run_id=run_id))
    if verdict.status == "fail":
        problems = [f"{c.name}: {c.detail}" for c in verdict.problems() if c.status == "fail"]
        raise NodeCheckFailed("; ".join(problems))
    warnings = [f"{c.name}: {c.detail}" for c in verdict.problems()]
    return done(None, checks=len(verdict.checks), warnings=warnings)
