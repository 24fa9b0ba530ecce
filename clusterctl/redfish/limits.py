"""Concurrency limits shared by every client of one run: per BMC and for the whole fleet.

BMCs have small session and connection limits (a handful), so a slot per BMC is taken
before a global slot; waiting for a busy BMC never holds a global slot others could use.

The global slots go to the waiting BMC of lowest rank (`rank`), first come first served within a
rank (all BMCs share rank 0 unless ranked). A provision run ranks its nodes in the order it starts
them: with more nodes at work than slots, first-come order interleaves every node's requests, each
node's first before any node's second, so thousands of nodes finish their start together, late, and
keep their connections idle long enough to lose them (at 12,500 nodes the controller then spent a
quarter of its time in TLS handshakes and no node finished discover for minutes). Served by rank,
the nodes started first finish first and the rest follow in turn, at the same total work.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

DEFAULT_PER_BMC = 4
DEFAULT_GLOBAL = 256


class RankedSlots:
    """A semaphore whose waiters are served lowest rank first, in arrival order within a rank."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    async def acquire(self, rank: int = 0) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._arrival), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # given a slot, then cancelled before taking it: it goes on to the next
            else:
                granted.cancel()  # left in the heap; release skips it
            raise

    def release(self) -> None:
        while self._waiting:
            _rank, _arrival, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1


class Limits:
    def __init__(self, per_bmc: int = DEFAULT_PER_BMC, global_requests: int = DEFAULT_GLOBAL) -> None:
        if per_bmc < 1 or global_requests < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.per_bmc = per_bmc
        self.global_requests = global_requests
        self._global = RankedSlots(global_requests)
        self._per: dict[str, asyncio.Semaphore] = {}
        self._ranks: dict[str, int] = {}

    def rank(self, order: Iterable[str]) -> None:
        """Serve these BMCs' requests in this order (by client name); unranked ones come after them."""
        self._ranks = {name: i for i, name in enumerate(order)}

    def _for(self, bmc: str) -> asyncio.Semaphore:
        sem = self._per.get(bmc)
        if sem is None:
            sem = self._per[bmc] = asyncio.Semaphore(self.per_bmc)
        return sem

    @asynccontextmanager
    async def slot(self, bmc: str) -> AsyncIterator[None]:
        async with self._for(bmc):
            await self._global.acquire(self._ranks.get(bmc, len(self._ranks)))
            try:
                yield
            finally:
                self._global.release()
