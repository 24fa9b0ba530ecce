"""Following the event log as it grows, the way `tail -f` follows a file.

Polling is deliberate: it works the same on SQLite and PostgreSQL, through any
proxy, and costs one indexed query per interval. Ids follow commit order (see
`store`), so "everything after the last id seen" never skips an event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from clusterctl.state.records import Event
from clusterctl.state.store import Store

POLL_INTERVAL_S = 0.5
BATCH = 500


def follow(
    store: Store,
    *,
    after_id: int,
    node: str | Iterable[str] | None = None,
    stage: str | None = None,
    run_id: int | None = None,
    kind: str | None = None,
    timeout: float | None = None,
    interval: float = POLL_INTERVAL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Event]:
    """Yield new events as they are committed; stop after `timeout` seconds (None: until interrupted)."""
    nodes = node if node is None or isinstance(node, str) else list(node)
    deadline = None if timeout is None else time.monotonic() + timeout
    last = after_id
    while True:
        batch = store.events(last, node=nodes, stage=stage, run_id=run_id, kind=kind, limit=BATCH)
        yield from batch
        if batch:
            last = batch[-1].id
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        if len(batch) < BATCH:  # caught up: wait for more
            sleep(interval if left is None else min(interval, left))
