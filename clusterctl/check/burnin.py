"""The short single-node burn-in of the standard and deep suites: the burn-in workload alone on each node,
judged by burn-in's own verdict (completion, falling loss, checksums agreeing across the node's ranks,
stragglers among its GPUs, clock events), through the same launcher and `execute` path `clusterctl burnin`
uses. Single-node, so one slow node never slows another's figure: each node's tokens/s is its own, and
the round then compares it with the node's peers and its own history like every other figure.

The jobs are not recorded as burn-in runs: their verdicts and figures belong to the check round.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusterctl.verdict import NodeVerdict

if TYPE_CHECKING:
    from clusterctl.check.figures import Figure
    from clusterctl.inventory import Inventory

GRACE_S = 300.0
"""Beyond the burn-in's duration before it is cut: startup, the model's first step, a slow node's tail."""


@dataclass(frozen=True)
class BurninPlan:
    seconds: float
    model: str = "transformer-big"
    parallel: int = 32
    connect_timeout: float = 10.0


def burn_in_nodes(inventory: Inventory, nodes: Sequence[str], plan: BurninPlan) -> dict[str, NodeVerdict]:
    """Each node's burn-in verdict (its metrics hold local_tokens_per_s and loss_last); one node's
    failure to start is that node's verdict, never the round's end."""
    if not nodes:
        return {}
    batch = secrets.token_hex(3)
    with ThreadPoolExecutor(max_workers=max(1, min(plan.parallel, len(nodes))), thread_name_prefix="burnin") as pool:
        verdicts = list(pool.map(lambda n: _one(inventory, n, f"chk{batch}-{n}", plan), nodes))
    return {v.node: v for v in verdicts}


def _one(inventory: Inventory, node: str, run_id: str, plan: BurninPlan) -> NodeVerdict:
    from clusterctl.burnin import launchers, selection
    from clusterctl.burnin.launchers.protocol import BurninSpec
    from clusterctl.burnin.run import execute
    from clusterctl.burnin.verdict import LAUNCH, REMEDIATION
    from clusterctl.errors import ClusterctlError

    try:
        gpus = selection.gpus_per_node(inventory, [node])
        spec = BurninSpec(run_id=run_id, model=plan.model, nodes=(node,), nproc=gpus or 1,
                          duration_s=plan.seconds, timeout_s=plan.seconds + GRACE_S)
        options = selection.launcher_options("ssh", inventory, [node], slurm_conf=None, partition=None, gpus=gpus,
                                             kubeconfig=None, context=None, namespace="default", image=None)
        job = launchers.create("ssh", **options, max_starting=1, connect_timeout=plan.connect_timeout)
        report = execute(job, spec, expected_nodes=[node], world_size=job.world_size(spec))
    except ClusterctlError as exc:
        verdict = NodeVerdict(node)
        verdict.fail(LAUNCH, f"could not start the burn-in: {exc}", REMEDIATION[LAUNCH])
        return verdict
    return next((v for v in report.verdicts if v.node == node), NodeVerdict(node))


def burnin_figures(verdicts: dict[str, NodeVerdict]) -> dict[str, list[Figure]]:
    """tokens/s of the node's slowest GPU (judged: peers, history) and its last loss (stored)."""
    from clusterctl.check.figures import Figure

    out: dict[str, list[Figure]] = {}
    for node, verdict in verdicts.items():
        speed, loss = verdict.metrics.get("local_tokens_per_s"), verdict.metrics.get("loss_last")
        if isinstance(speed, int | float):
            out.setdefault(node, []).append(Figure(node, "burnin.tokens_per_s", float(speed)))
        if isinstance(loss, int | float):
            out.setdefault(node, []).append(Figure(node, "burnin.loss", float(loss)))
    return out
