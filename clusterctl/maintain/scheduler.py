"""Taking nodes out of service and back through the scheduler each one belongs to.

The inventory says which: a node with a Slurm partition is drained and resumed through Slurm;
one with Kubernetes labels (and no partition) is cordoned, its pods evicted through the Eviction
API so PodDisruptionBudgets hold, and uncordoned; a node in no scheduler is taken directly.
The calls are clusterctl.burnin.quarantine's, the one drain path. The schedulers' own view also
says which nodes are already unavailable for other reasons, which the capacity floor counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterctl.burnin import quarantine as q

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory


@dataclass
class Picture:
    """The schedulers' view at one moment."""

    slurm: dict[str, q.SlurmNode] = field(default_factory=dict)
    kube: dict[str, q.KubeNode] = field(default_factory=dict)


class Scheduler:
    def __init__(self, inventory: Inventory, schedulers: q.Schedulers) -> None:
        self.inventory = inventory
        self._given = schedulers
        self._reach: q.Schedulers | None = None
        self.by_node: dict[str, str] = {}
        for node in inventory.nodes.values():
            if node.scheduler.slurm.partition:
                self.by_node[node.name] = "slurm"
            elif node.scheduler.kubernetes.labels:
                self.by_node[node.name] = "kubernetes"

    @property
    def reach(self) -> q.Schedulers:
        """How to reach the schedulers; one Kubernetes API client for the whole rollout, made when first needed
        (a client per call would parse the kubeconfig and open a connection pool at every poll)."""
        if self._reach is None:
            reach = self._given
            if "kubernetes" in self.by_node.values() and reach.kube_api is None:
                from dataclasses import replace

                from clusterctl.burnin.launchers.kubernetes import api_client

                reach = replace(reach, kube_api=api_client(reach.kubeconfig, reach.context))
            self._reach = reach
        return self._reach

    def via(self, node: str) -> str | None:
        return self.by_node.get(node)

    def states(self) -> Picture:
        used = set(self.by_node.values())
        return Picture(slurm=q.slurm_nodes(self.reach) if "slurm" in used else {},
                       kube=q.kube_nodes(self.reach) if "kubernetes" in used else {})

    def unavailable(self, picture: Picture, fleet: Iterable[str]) -> dict[str, str]:
        """{node: why} for inventory nodes their scheduler cannot place work on now."""
        out = {}
        for node in fleet:
            via = self.via(node)
            if via == "slurm":
                found = picture.slurm.get(node)
                if found is None:
                    out[node] = "unknown to Slurm"
                elif not found.available:
                    out[node] = f"{found.state}{found.flags}" + (f": {found.reason}" if found.reason else "")
            elif via == "kubernetes":
                seen = picture.kube.get(node)
                if seen is None:
                    out[node] = "unknown to Kubernetes"
                elif not seen.available:
                    out[node] = "cordoned" if seen.ready else "not ready"
        return out

    def drain(self, node: str, reason: str) -> None:
        via = self.via(node)
        if via == "slurm":
            q.slurm_drain(node, reason, self.reach)
        elif via == "kubernetes":
            q.kube_cordon(node, self.reach)

    def idle(self, node: str, picture: Picture) -> bool:
        """True once no job or pod is left on the drained node (always, for a node in no scheduler).
        On Kubernetes this asks for the evictions still needed; a budget that forbids one now is asked again
        at the next call."""
        via = self.via(node)
        if via == "slurm":
            found = picture.slurm.get(node)
            return found is not None and found.drained
        if via == "kubernetes":
            return not q.kube_evict(node, self.reach)
        return True

    def force(self, node: str) -> list[str]:
        """--force-after: requeue the Slurm jobs, or delete the pods, still on a draining node."""
        via = self.via(node)
        if via == "slurm":
            jobs = q.slurm_jobs(node, self.reach)
            q.slurm_requeue(jobs, self.reach)
            return jobs
        if via == "kubernetes":
            return q.kube_delete_pods(node, self.reach)
        return []

    def resume(self, node: str) -> None:
        via = self.via(node)
        if via == "slurm":
            q.slurm_resume(node, self.reach)
        elif via == "kubernetes":
            q.kube_cordon(node, self.reach, cordon=False)

    def keep_drained(self, node: str, reason: str) -> None:
        """A node that must stay out (abort): drained with the reason (Slurm), cordoned (Kubernetes)."""
        via = self.via(node)
        if via == "slurm":
            q.slurm_drain(node, reason, self.reach)
        elif via == "kubernetes":
            q.kube_cordon(node, self.reach)
