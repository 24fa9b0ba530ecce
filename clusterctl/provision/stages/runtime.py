"""Stage `runtime`: the burn-in runtime alone (playbooks/runtime.yml, role burnin_runtime), per host.

The os stage's playbook installs the runtime too, so a full `provision` needs no extra stage; this one
exists for what comes after: a node whose runtime was removed or is for another clusterctl version
(`clusterctl burnin` names it with `clusterctl provision FILE --stages runtime --limit NODE`), and a new
clusterctl release, whose runtime goes beside the old one without the rest of the os stage. Batching,
the journal's intent and outcome and SSH handling are the os stage's (`SitePlaybook`), under this stage's
own name; unlike os, it runs even where the same playbook passed before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterctl.provision.context import StageResult, skipped
from clusterctl.provision.stages.os import SitePlaybook, _run_or_recall
from clusterctl.provision.stages.os.ansible import PLAYBOOKS
from clusterctl.ssh.probe import ssh_problem

if TYPE_CHECKING:
    from clusterctl.provision.context import NodeContext

STAGE = "runtime"
PLAYBOOK = PLAYBOOKS / "runtime.yml"


async def plan(ctx: NodeContext) -> dict[str, Any]:
    down = await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)
    return {"skip": f"SSH not reachable: {down}"} if down else {"change": {"playbook": "playbooks/runtime.yml"}}


async def run(ctx: NodeContext) -> StageResult:
    down = await ssh_problem(ctx.node, ctx.tuning.ssh_probe_timeout_s)
    if down:
        return skipped(f"SSH not reachable: {down}")
    # Always run: this stage is how a runtime removed or changed on the node since is put back, and the role
    # changes nothing where it is intact.
    site = ctx.per_run.setdefault(STAGE, SitePlaybook(PLAYBOOK, stage=STAGE))
    return await _run_or_recall(ctx, site, recall=False)
