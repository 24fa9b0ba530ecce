"""Live progress on stderr while a run goes on: per-stage counts, throughput, ETA, failing nodes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from clusterctl.provision.engine import Tracker

STATUSES = ("pending", "running", "done", "skipped", "failed")
REFRESH_S = 0.5


def render(tracker: Tracker) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, title=None)
    table.add_column("stage")
    for status in STATUSES:
        table.add_column(status, justify="right")
    for stage in tracker.stages:
        counts = tracker.counts.get(stage, {})
        cells = [str(counts.get(s, 0) or "·") for s in STATUSES]
        table.add_row(Text(stage), *cells)
    rate = tracker.throughput() * 60
    eta = tracker.eta_s()
    line = f"{tracker.ready}/{tracker.total} ready, {tracker.failed} failed, {rate:.1f} nodes/min"
    if eta is not None and tracker.ready + tracker.failed < tracker.total:
        line += f", ETA {eta / 60:.1f} min"
    parts: list[Any] = [table, Text(line)]
    for node, stage, reason in tracker.failing[-5:]:
        parts.append(Text(f"  failed {node} at {stage}: {reason}", style="red"))
    return Group(*parts)


@contextlib.asynccontextmanager
async def live(console: Console, tracker: Tracker, enabled: bool) -> AsyncIterator[None]:
    """Redraw the tracker while the block runs; off (no output) when stderr is not a terminal."""
    if not enabled:
        yield
        return
    from rich.live import Live

    with Live(render(tracker), console=console, refresh_per_second=4, transient=False) as view:
        async def refresh() -> None:
            while True:
                await asyncio.sleep(REFRESH_S)
                view.update(render(tracker))

        task = asyncio.ensure_future(refresh())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            view.update(render(tracker))
