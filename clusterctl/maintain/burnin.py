"""The short burn-in a maintained node passes before it serves again: the burn-in workload on that node
alone, over SSH (the node is drained, so its scheduler would not place the job), recorded as any burn-in."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory
    from clusterctl.state.store import Store


def short_burnin(store: Store, inventory: Inventory, node: str, *, minutes: float, model: str) -> list[str]:
    """The reasons the node failed its burn-in; empty when it passed (a warning passes)."""
    from clusterctl.burnin import launchers, selection
    from clusterctl.burnin.launchers.protocol import BurninSpec
    from clusterctl.burnin.run import burn_in

    gpus = selection.gpus_per_node(inventory, [node])
    duration_s = max(1.0, minutes * 60)
    spec = BurninSpec(run_id=secrets.token_hex(4), model=model, nodes=(node,), nproc=gpus or 1,
                      duration_s=duration_s, timeout_s=duration_s + 600)
    options = selection.launcher_options("ssh", inventory, [node], slurm_conf=None, partition=None, gpus=gpus,
                                         kubeconfig=None, context=None, namespace="default", image=None)
    job = launchers.create("ssh", **options)
    report, _ = burn_in(store, job, spec, expected_nodes=job.expected_nodes(spec), world_size=job.world_size(spec),
                        inventory=str(inventory.path))
    return list(report.failed.get(node, []))
