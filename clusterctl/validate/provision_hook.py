"""The `validate` stage of `clusterctl provision`: the node-side checks for one freshly configured node.

Provisioning already read the BMC (power, PSUs) in `discover`, so this hook runs what only the
node can tell: GPUs through NVML, XIDs, InfiniBand and software versions, with the same agent,
rules and SSH path as `clusterctl validate`. A failing check fails the stage with its reason;
warnings let the node become ready and stay visible in the store.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.context import StageResult, done, skipped

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext
    from clusterctl.validate.run import FleetReport

CATEGORIES = ("gpu", "fabric", "software")


def _check(ctx: NodeContext) -> FleetReport:
    from clusterctl.ssh import SSHPool, target_from_node
    from clusterctl.validate.expect import Expectation
    from clusterctl.validate.rules import load_ruleset
    from clusterctl.validate.run import collect_reports, judge

    expect = Expectation.from_node(ctx.node)
    pool = SSHPool(max_sessions=1)
    reports = collect_reports([target_from_node(ctx.node, ctx.inventory)], pool, max_parallel=1)
    return judge([expect], {expect.gpu_model: load_ruleset(expect.gpu_model)}, categories=CATEGORIES,
                 reports=reports)


async def validate_node(ctx: NodeContext) -> StageResult:
    from clusterctl.ssh.probe import ssh_problem

    # As the `os` stage does: a node whose SSH does not answer is reported skipped, never passed.
    unreachable = await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)
    if unreachable:
        return skipped(f"the node-side checks need SSH: {unreachable}")
    report = await asyncio.to_thread(_check, ctx)
    verdict = report.verdicts[0]
    store = ctx.journal.store
    with store.transaction() as tx:
        for check in verdict.checks:
            tx.record_check(ctx.node.name, check.name, check.status, run_id=ctx.journal.run_id,
                            detail=check.detail, data={"rule": check.rule, "remediation": check.remediation})
    if verdict.status == "fail":
        problems = [f"{c.name}: {c.detail}" for c in verdict.problems() if c.status == "fail"]
        raise NodeCheckFailed("; ".join(problems))
    warnings = [f"{c.name}: {c.detail}" for c in verdict.problems()]
    return done(None, checks=len(verdict.checks), warnings=warnings)
