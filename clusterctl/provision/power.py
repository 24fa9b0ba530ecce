"""Who may reboot now: each rack's power budget and reboot limit, and a site-wide reboot limit.

A rebooting server runs its fans flat out and its firmware jobs at full draw, so it is counted
at its `hardware.max_power_w`; every other node of the rack counts at the draw discover measured
(PowerConsumedWatts), or at its max_power_w when nothing was measured (conservative: a node
outside this run, or one whose BMC did not answer). A reboot starts only while the rack's
estimated sum stays within `power_budget_w` and fewer than `max_rebooting` of its nodes reboot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterctl.errors import NodeCheckFailed

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory, Node


class PowerBudgetTooSmall(NodeCheckFailed):
    """Even alone, this node's reboot would exceed its rack's power budget."""


@dataclass
class RackPower:
    name: str
    budget_w: int | None
    max_rebooting: int
    max_w: dict[str, int | None]
    measured_w: dict[str, float] = field(default_factory=dict)
    rebooting: set[str] = field(default_factory=set)
    peak_rebooting: int = 0
    peak_w: float = 0.0
    condition: asyncio.Condition = field(default_factory=asyncio.Condition)

    def steady_w(self, node: str) -> float:
        if node in self.measured_w:
            return self.measured_w[node]
        return float(self.max_w.get(node) or 0)

    def estimate_w(self, rebooting: set[str]) -> float:
        return sum(float(self.max_w.get(n) or 0) if n in rebooting else self.steady_w(n) for n in self.max_w)

    def fits(self, node: str) -> bool:
        if len(self.rebooting) >= self.max_rebooting:
            return False
        return self.budget_w is None or self.estimate_w(self.rebooting | {node}) <= self.budget_w


class PowerGate:
    """Reboot admission for the whole run; `async with gate.rebooting(node):` around a reset and its wait."""

    def __init__(self, inventory: Inventory, *, max_rebooting_total: int | None = None) -> None:
        self.racks: dict[str, RackPower] = {}
        for rack in inventory.racks.values():
            self.racks[rack.name] = RackPower(
                name=rack.name,
                budget_w=rack.power_budget_w,
                max_rebooting=rack.max_rebooting,
                max_w={n: inventory.nodes[n].hardware.max_power_w for n in rack.nodes},
            )
        self._total = asyncio.Semaphore(max_rebooting_total) if max_rebooting_total else None

    def measured(self, node: Node, watts: float | None) -> None:
        if watts is not None and node.rack in self.racks:
            self.racks[node.rack].measured_w[node.name] = float(watts)

    def check(self, node: Node) -> None:
        """Fail early (not wait forever) when this node can never reboot within its rack's budget."""
        rack = self.racks.get(node.rack)
        if rack is None or rack.budget_w is None:
            return
        alone = rack.estimate_w({node.name})
        if alone > rack.budget_w:
            raise PowerBudgetTooSmall(
                f"rack {rack.name}: a reboot of {node.name} needs an estimated {alone:.0f} W, over the "
                f"rack's power_budget_w {rack.budget_w}"
            )

    def admits(self, node: Node) -> bool:
        """Whether `rebooting(node)` would start at once, without waiting for a slot."""
        rack = self.racks.get(node.rack)
        if self._total is not None and self._total.locked():
            return False
        return rack is None or rack.fits(node.name)

    @asynccontextmanager
    async def rebooting(self, node: Node) -> AsyncIterator[RackPower | None]:
        rack = self.racks.get(node.rack)
        if rack is None:
            yield None
            return
        self.check(node)
        if self._total is not None:
            await self._total.acquire()
        try:
            async with rack.condition:
                await rack.condition.wait_for(lambda: rack.fits(node.name))
                rack.rebooting.add(node.name)
                rack.peak_rebooting = max(rack.peak_rebooting, len(rack.rebooting))
                rack.peak_w = max(rack.peak_w, rack.estimate_w(rack.rebooting))
            try:
                yield rack
            finally:
                async with rack.condition:
                    rack.rebooting.discard(node.name)
                    rack.condition.notify_all()
        finally:
            if self._total is not None:
                self._total.release()
