"""A node's places in the engine's gates: the run's `--concurrency`, discover's group and the warm-up group.

A node takes its place in the concurrency before its lease, so only the nodes about to work hold
one. The warm-up group admits the BMC-heavy part of a node's start (images, resets, staging), two
nodes a rack (at least 16), so that every rack gets its first reboots going early; a node leaves it
when it first waits for a reboot slot. Discover has a group of its own: discover measures the draw a
rack's power budget is judged on (a node nobody has measured counts at its maximum), so a node's
discover must not wait behind the image work of the nodes ahead of it. That group is no wider than
the requests the run lets in flight at once (`global_requests`, 256): discover is requests and nothing
else, and with more nodes in it than requests in flight every node's first request queues before
any node's second, so all of them finish together, late (3,126 nodes at 12,500 finished none for
minutes; with every node's discover at once, a 2,000-node run did the same).

While a node waits for a reboot slot it gives both places back (`step_out`): waiting costs the
controller nothing, and if the waiters kept their places, a run whose every place is held by
nodes waiting for a rack that cannot start a reboot until its other nodes are measured would wait
until it gives up. It comes back into the concurrency (`step_in`) once its reboot is over.
"""

from __future__ import annotations

import asyncio


class Places:
    """One node's hold on the run's concurrency and warm-up semaphores (each released at most once)."""

    def __init__(self, slots: asyncio.Semaphore, warm: asyncio.Semaphore, discovering: asyncio.Semaphore) -> None:
        self._slots = slots
        self._warm = warm
        self.discovering = discovering
        """Discover's own group, no wider than the run's requests in flight: its burst stays that size."""
        self._in_slot = False
        self._in_warm = False
        self._warmed = False

    async def enter(self) -> None:
        """A place in the run's concurrency (again, after `leave`)."""
        await self.step_in()

    async def warm_up(self) -> None:
        """A place in the warm-up group, unless the node already had one (its BMC-heavy start is over)."""
        if not self._warmed and not self._in_warm:
            await self._warm.acquire()
            self._in_warm = True

    def warmed_up(self) -> None:
        """The node's BMC-heavy start is over (its first reset is sent, or it waits for a reboot slot)."""
        if self._in_warm:
            self._in_warm = False
            self._warmed = True
            self._warm.release()

    def step_out(self) -> None:
        """The node waits for a reboot slot: both places go to nodes that can work meanwhile."""
        self.warmed_up()
        if self._in_slot:
            self._in_slot = False
            self._slots.release()

    async def step_in(self) -> None:
        """Back into the concurrency after a reboot the node waited for."""
        if not self._in_slot:
            await self._slots.acquire()
            self._in_slot = True

    def leave(self) -> None:
        if self._in_warm:
            self._in_warm = False
            self._warm.release()
        if self._in_slot:
            self._in_slot = False
            self._slots.release()
