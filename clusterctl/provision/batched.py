"""Requests made at the same moment by many node tasks go to the store in one transaction.

Hundreds of nodes reach the same step together (the first wave takes its nodes, a rack's reboots
end together): one transaction each would queue them all on the store's writer lock, one
transaction for whatever is waiting costs a few per second whatever the fleet size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batched(Generic[T, R]):
    """`await batched(item)`: `run(items)` (in a thread, one transaction) answers each item in order."""

    def __init__(self, run: Callable[[list[T]], list[R]]) -> None:
        self._run = run
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # the tasks woken in the same moment join this batch
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await asyncio.to_thread(self._run, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiter, never lost
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
