"""A node's places in the engine's two gates: the run's `--concurrency` and the warm-up group.

A node first waits for the warm-up group, then for a place in the run's concurrency, and only then
takes its lease: a node that waits holds nothing another controller could want. While it waits for a
reboot slot it gives both places back (`step_out`): waiting costs the controller nothing, and the
nodes let in meanwhile are the ones a rack's power budget may be waiting for (a node nobody has
measured yet counts at its maximum draw, so a run whose every place is held by nodes waiting for a
rack that cannot start a reboot until its other nodes are discovered would wait until it gives up).
It comes back into the concurrency (`step_in`) once its reboot is over, ahead of new nodes, which
wait for the warm-up group first.
"""

from __future__ import annotations

import asyncio


class Places:
    """One node's hold on the run's concurrency and warm-up semaphores (each released at most once)."""

    def __init__(self, slots: asyncio.Semaphore, warm: asyncio.Semaphore) -> None:
        self._slots = slots
        self._warm = warm
        self._in_slot = False
        self._in_warm = False

    async def enter(self) -> None:
        """Warm-up group first, then the concurrency: only the nodes about to work hold a place."""
        if not self._in_warm:
            await self._warm.acquire()
            self._in_warm = True
        await self.step_in()

    def warmed_up(self) -> None:
        """The node's BMC-heavy start is over (its first reset is sent, or it waits for a reboot slot)."""
        if self._in_warm:
            self._in_warm = False
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
        self.step_out()
