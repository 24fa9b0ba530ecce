"""Who may reboot now: each rack's power budget and reboot limit, and a site-wide reboot limit.

A rebooting server runs its fans flat out and its firmware jobs at full draw, so it is counted
at its `hardware.max_power_w`; every other node of the rack counts at the draw discover measured
(PowerConsumedWatts), or at its max_power_w when nothing was measured (conservative: a node
outside this run, or one whose BMC did not answer). A reboot starts only while the rack's
estimated sum stays within `power_budget_w` and fewer than `max_rebooting` of its nodes reboot.

With a store (`SharedSlots`), that decision is made in the store, over every controller's reboots
and measured draws (state/reboot_slots.py); in memory, only the count of this controller's own
reboots is checked first, so a full rack costs no store round trip. Without one (`--dry-run`'s plan)
the gate is this process's alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterctl.errors import NodeCheckFailed
from clusterctl.provision.batched import Batched

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory, Node
    from clusterctl.state.node_leases import Controller
    from clusterctl.state.reboot_slots import Take, Taken


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
    carried: set[str] = field(default_factory=set)
    """Nodes whose slot came with them from a dead controller (counted in `rebooting`)."""
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    """With shared slots: one of this controller's waiters at a time asks the store for this rack."""

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


class SharedSlots:
    """The store's side of the gate: takes, releases and measured draws, batched into few transactions."""

    def __init__(self, controller: Controller, rack_of: dict[str, str], *, hold_s: float, poll_s: float) -> None:
        self.controller = controller
        self.rack_of = rack_of
        self.hold_s = hold_s
        self.poll_s = poll_s
        self.measured: dict[str, float] = {}
        self._releases: list[str] = []
        self._ask: Batched[Take | None, Taken | None] = Batched(self._in_store)
        self._pending: set[asyncio.Task[object]] = set()

    def _in_store(self, wants: list[Take | None]) -> list[Taken | None]:
        from clusterctl.state import reboot_slots

        measured, self.measured = self.measured, {}
        releases, self._releases = self._releases, []
        with self.controller.store.transaction() as tx:
            reboot_slots.write_measured(tx, self.rack_of, measured)
            reboot_slots.release(tx, self.controller.token, releases)
            now = time.time()
            return [None if w is None else reboot_slots.take(tx, self.controller.token, w, now=now,
                                                             hold_s=self.hold_s) for w in wants]

    async def take(self, want: Take) -> Taken:
        taken = await self._ask(want)
        assert taken is not None
        return taken

    def release(self, node: str, then: asyncio.Event) -> None:
        """Give the slot back in the next transaction (now, or with others'), then wake the rack's waiter."""
        self._releases.append(node)
        task = asyncio.ensure_future(self._ask(None))
        self._pending.add(task)
        task.add_done_callback(lambda t: (self._pending.discard(t), then.set()))

    async def flush(self) -> None:
        """Wait for releases still on their way to the store (end of run)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class _Once:
    """`waiting()`, called the first time a slot must be waited for (none: nothing to call)."""

    def __init__(self, waiting: Callable[[], None] | None) -> None:
        self._waiting = waiting

    def __call__(self) -> None:
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting()


class PowerGate:
    """Reboot admission for the whole run; `async with gate.rebooting(node):` around a reset and its wait."""

    def __init__(self, inventory: Inventory, *, max_rebooting_total: int | None = None,
                 shared: SharedSlots | None = None) -> None:
        self.shared = shared
        self.racks: dict[str, RackPower] = {}
        for rack in inventory.racks.values():
            self.racks[rack.name] = RackPower(
                name=rack.name,
                budget_w=rack.power_budget_w,
                max_rebooting=rack.max_rebooting,
                max_w={n: inventory.nodes[n].hardware.max_power_w for n in rack.nodes},
            )
        self.max_rebooting_total = max_rebooting_total
        self._total = asyncio.Semaphore(max_rebooting_total) if max_rebooting_total else None
        """This controller's own reboots; with a store, the site-wide count is checked there too."""
        self._changed: dict[str, asyncio.Event] = {}

    def measured(self, node: Node, watts: float | None) -> None:
        if watts is not None and node.rack in self.racks:
            self.racks[node.rack].measured_w[node.name] = float(watts)
            if self.shared is not None:
                self.shared.measured[node.name] = float(watts)

    def carry(self, node: Node) -> None:
        """`node` was taken over still holding a reboot slot: keep it until its next reboot ends (or `drop`)."""
        rack = self.racks.get(node.rack)
        if rack is not None:
            rack.carried.add(node.name)
            rack.rebooting.add(node.name)

    def drop(self, node: Node) -> None:
        """The node is done: a slot it still carries goes back (with the node's lease, in the store)."""
        rack = self.racks.get(node.rack)
        if rack is not None and node.name in rack.carried:
            rack.carried.discard(node.name)
            rack.rebooting.discard(node.name)
            self._changed.setdefault(rack.name, asyncio.Event()).set()

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

    @asynccontextmanager
    async def rebooting(self, node: Node, *, waiting: Callable[[], None] | None = None
                        ) -> AsyncIterator[RackPower | None]:
        """Hold `node`'s reboot slot for the block; `waiting()` is called once if it must wait for one."""
        rack = self.racks.get(node.rack)
        if rack is None:
            yield None
            return
        if self.shared is None:
            self.check(node)  # shared: the store knows other controllers' draws (see _shared_slot)
        wait = _Once(waiting)
        if self._total is not None:
            if self._total.locked():
                wait()
            await self._total.acquire()
        try:
            slot = self._local_slot(rack, node, wait) if self.shared is None else self._shared_slot(rack, node, wait)
            async with slot as held:
                yield held
        finally:
            if self._total is not None:
                self._total.release()

    @asynccontextmanager
    async def _local_slot(self, rack: RackPower, node: Node, wait: _Once) -> AsyncIterator[RackPower]:
        async with rack.condition:
            if not rack.fits(node.name):
                wait()
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

    @asynccontextmanager
    async def _shared_slot(self, rack: RackPower, node: Node, wait: _Once) -> AsyncIterator[RackPower]:
        from clusterctl.state.reboot_slots import Take

        assert self.shared is not None
        changed = self._changed.setdefault(rack.name, asyncio.Event())
        want = Take(node.name, rack.name, rack.max_w, rack.budget_w, rack.max_rebooting, self.max_rebooting_total)
        if node.name in rack.carried:  # its dead holder's slot, held since the take-over
            rack.carried.discard(node.name)
            try:
                yield rack
            finally:
                rack.rebooting.discard(node.name)
                self.shared.release(node.name, changed)
            return
        gave_up_at = time.monotonic() + self.shared.hold_s
        unmeasured = len(rack.max_w) + 1
        if rack.turn.locked():
            wait()
        async with rack.turn:
            while True:
                changed.clear()
                if len(rack.rebooting) < rack.max_rebooting:  # this controller's own share, no store needed
                    taken = await self.shared.take(want)
                    if taken.ok:
                        break
                    if taken.unmeasured < unmeasured:  # progress: the clock below starts again
                        unmeasured = taken.unmeasured
                        gave_up_at = time.monotonic() + self.shared.hold_s
                    never = rack.budget_w is not None and taken.alone_w > rack.budget_w
                    if never and (not taken.unmeasured or time.monotonic() > gave_up_at):
                        # Unmeasured nodes count at their maximum: while others measure them (as long as a
                        # reboot may take for each next one), this node waits rather than gives up.
                        raise PowerBudgetTooSmall(
                            f"rack {rack.name}: a reboot of {node.name} needs an estimated {taken.alone_w:.0f} W, "
                            f"over the rack's power_budget_w {rack.budget_w}")
                    timeout: float | None = self.shared.poll_s  # another controller's reboot ends unseen
                else:
                    timeout = self.shared.hold_s  # only one of ours ending can help: its release wakes us
                wait()
                with suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout)
            rack.rebooting.add(node.name)
            rack.peak_rebooting = max(rack.peak_rebooting, taken.rebooting)
            rack.peak_w = max(rack.peak_w, taken.estimate_w)
        try:
            yield rack
        finally:
            rack.rebooting.discard(node.name)
            self.shared.release(node.name, changed)
