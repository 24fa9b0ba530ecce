"""Concurrency limits shared by every client of one run: per BMC and for the whole fleet.

BMCs have small session and connection limits (a handful), so a slot per BMC is taken
before a global slot; waiting for a busy BMC never holds a global slot others could use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

DEFAULT_PER_BMC = 4
DEFAULT_GLOBAL = 256


class Limits:
    def __init__(self, per_bmc: int = DEFAULT_PER_BMC, global_requests: int = DEFAULT_GLOBAL) -> None:
        if per_bmc < 1 or global_requests < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.per_bmc = per_bmc
        self.global_requests = global_requests
        self._global = asyncio.Semaphore(global_requests)
        self._per: dict[str, asyncio.Semaphore] = {}

    def _for(self, bmc: str) -> asyncio.Semaphore:
        sem = self._per.get(bmc)
        if sem is None:
            sem = self._per[bmc] = asyncio.Semaphore(self.per_bmc)
        return sem

    @asynccontextmanager
    async def slot(self, bmc: str) -> AsyncIterator[None]:
        async with self._for(bmc), self._global:
            yield
