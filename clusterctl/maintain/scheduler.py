"""Taking nodes out of service and back through the scheduler each one belongs to.

A node whose inventory names a Slurm partition is drained and resumed through Slurm (the same
calls `burnin --quarantine` makes, clusterctl.burnin.quarantine); a node in no scheduler is
taken directly. Slurm's own view also says which nodes are already unavailable for other
reasons, which the capacity floor counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from clusterctl.burnin import quarantine as q

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory


class Scheduler:
    def __init__(self, inventory: Inventory, schedulers: q.Schedulers) -> None:
        self.inventory = inventory
        self.reach = schedulers
        self.slurm_nodes = {n.name for n in inventory.nodes.values() if n.scheduler.slurm.partition}

    def via(self, node: str) -> str | None:
        return "slurm" if node in self.slurm_nodes else None

    def states(self) -> dict[str, q.SlurmNode]:
        """Slurm's view of its nodes ({} when no inventory node names a partition)."""
        return q.slurm_nodes(self.reach) if self.slurm_nodes else {}

    def unavailable(self, states: dict[str, q.SlurmNode], fleet: Iterable[str]) -> dict[str, str]:
        """{node: why} for inventory nodes the scheduler cannot place jobs on now."""
        out = {}
        for node in fleet:
            if node not in self.slurm_nodes:
                continue
            found = states.get(node)
            if found is None:
                out[node] = "unknown to Slurm"
            elif not found.available:
                out[node] = f"{found.state}{found.flags}" + (f": {found.reason}" if found.reason else "")
        return out

    def drain(self, node: str, reason: str) -> None:
        if self.via(node) == "slurm":
            q.slurm_drain(node, reason, self.reach)

    def idle(self, node: str, states: dict[str, q.SlurmNode]) -> bool:
        """True once no job runs on the drained node (always, for a node in no scheduler)."""
        if self.via(node) != "slurm":
            return True
        found = states.get(node)
        return found is not None and found.drained

    def force(self, node: str) -> list[str]:
        """Requeue the jobs still on a draining node; returns their ids."""
        if self.via(node) != "slurm":
            return []
        jobs = q.slurm_jobs(node, self.reach)
        q.slurm_requeue(jobs, self.reach)
        return jobs

    def resume(self, node: str) -> None:
        if self.via(node) == "slurm":
            q.slurm_resume(node, self.reach)

    def keep_drained(self, node: str, reason: str) -> None:
        """A node that failed: drained with the failing check as its reason (`sinfo -R`)."""
        if self.via(node) == "slurm":
            q.slurm_drain(node, reason, self.reach)
