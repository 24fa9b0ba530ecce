"""Which nodes a burn-in takes, how many ranks each gets, and what its launcher needs from the inventory.

Shared by every command that burns nodes in (`burnin`, and the short burn-ins of maintenance and
periodic checks), so a node list means the same thing whichever command reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory


def choose_nodes(inventory: Inventory | None, pattern: str | None) -> list[str]:
    """Names, hostlists, racks or groups from the inventory; without one, a plain hostlist."""
    if inventory is not None:
        return [n.name for n in inventory.select(pattern)]
    if not pattern:
        return []
    from clusterctl.inventory.hostlist import HostlistError, expand

    try:
        return expand(pattern)
    except HostlistError as exc:
        raise ClusterctlError(f"--nodes: {exc}") from None


def gpus_per_node(inventory: Inventory | None, nodes: list[str]) -> int | None:
    """One rank per GPU needs one GPU count: a job's ranks per node are the same on every node."""
    if inventory is None or not nodes:
        return None
    counts = {inventory.nodes[n].gpus for n in nodes}
    if len(counts) > 1:
        raise ClusterctlError(f"--nodes mixes nodes with {sorted(counts)} GPUs; burn them in separately "
                              "or give --nproc")
    return counts.pop() or None


def launcher_options(launcher: str, inventory: Inventory | None, nodes: list[str], *, slurm_conf: Path | None,
                     partition: str | None, gpus: int | None, kubeconfig: Path | None, context: str | None,
                     namespace: str, image: str | None, kube_workload: str = "auto") -> dict[str, Any]:
    if launcher == "slurm":
        if partition is None and inventory is not None:
            found = {inventory.nodes[n].scheduler.slurm.partition for n in nodes} - {None}
            partition = found.pop() if len(found) == 1 else None
        return {"slurm_conf": str(slurm_conf) if slurm_conf else None, "partition": partition,
                "gpus_per_node": gpus, "inventory": str(inventory.path) if inventory is not None else None}
    if launcher == "kubernetes":
        if not image:
            raise ClusterctlError("--image: the kubernetes launcher needs a container image with torch and the "
                                  "workload")
        labels: dict[str, str] = {}
        if inventory is not None and nodes:
            # Only labels every chosen node carries can select them all.
            label_sets = [inventory.nodes[n].scheduler.kubernetes.labels for n in nodes]
            labels = {k: v for k, v in label_sets[0].items() if all(s.get(k) == v for s in label_sets)}
        return {"kubeconfig": str(kubeconfig) if kubeconfig else None, "context": context, "namespace": namespace,
                "image": image, "gpus_per_node": gpus, "node_labels": labels, "workload": kube_workload}
    if launcher == "ssh":
        if inventory is None:
            raise ClusterctlError("the ssh launcher needs the inventory FILE (node addresses, keys, known_hosts)")
        from clusterctl.ssh.target import target_from_node

        return {"targets": {n: target_from_node(inventory.nodes[n], inventory) for n in nodes},
                "inventory": str(inventory.path)}
    return {}
