"""When to look again at an operation a BMC runs (a task, a job, a reboot).

A fixed interval costs half an interval per wait on average, after every reset, job and POST
of every node: on a rack whose reboots run one after another, that lag adds up along the whole
chain. Servers of one model take about the same time for the same work, so a run learns it: the
first waits of a kind start with short polls that grow to the interval (a five-second staging
is not waited on for a whole interval), later ones close in on the earliest end seen so far
with fewer looks and then poll finely for a while. Nothing is assumed before it has been seen,
and an operation slower than everything seen before falls back to the plain interval.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Protocol

FINE = 8
"""Near the expected end, and at the start of a wait with nothing learned, polls come this many
times as often as the interval."""
COARSE = 4
"""Far from the expected end, polls come up to this many intervals apart (a POST of several minutes
needs no look every few seconds: those looks were half of all requests at 2,000 nodes)."""
KEEP = 64
"""Durations remembered per kind of operation (the newest)."""


class Cadence(Protocol):
    def delay(self, elapsed: float) -> float:
        """Seconds to sleep after a look, `elapsed` seconds into the wait, found the operation running."""
        ...

    def finished(self, elapsed: float) -> None:
        """A look `elapsed` seconds into the wait found the operation done."""
        ...


@dataclass(frozen=True)
class Every:
    """The plain fixed interval."""

    seconds: float

    def delay(self, elapsed: float) -> float:
        return self.seconds

    def finished(self, elapsed: float) -> None:
        pass


def cadence_of(poll: float | Cadence) -> Cadence:
    return Every(float(poll)) if isinstance(poll, int | float) else poll


class Wait:
    """The clock of one poll loop: every wait on a BMC is bounded by a deadline and paced by a cadence.

    Each loop looks, returns through `done` when the operation has ended, and otherwise asks
    `sleep` for the next look; `sleep` says False once the deadline has passed, and the loop raises
    (or gives up) with what it last saw.
    """

    def __init__(self, poll: float | Cadence, deadline_s: float) -> None:
        self.cadence = cadence_of(poll)
        self.deadline_s = deadline_s
        self.started = time.monotonic()
        self.looked = 0.0
        """When the current look began, seconds into the wait: the cadence paces from there."""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def done(self) -> None:
        """The last look found the operation ended: the cadence learns how long it took."""
        self.cadence.finished(self.elapsed())

    async def sleep(self, retry_after: float | None = None) -> bool:
        """Sleep until the next look (the BMC's Retry-After wins over the cadence), never past the
        deadline; False, without sleeping, once it has passed."""
        remaining = self.deadline_s - self.elapsed()
        if remaining <= 0:
            return False
        delay = self.cadence.delay(self.looked)
        await asyncio.sleep(min(delay if retry_after is None else retry_after, remaining))
        self.looked = self.elapsed()
        return True


@dataclass
class Durations:
    """When operations of each kind ended in this run, shared by every node's waits.

    Each ended wait leaves the window its operation ended in: after the last look that found it
    running, up to the look that found it done. The starts of those windows bound how soon the
    next one may end; learning from the looks that found it done instead would keep the first
    waits' lag forever.
    """

    interval: float
    ended: dict[Hashable, deque[tuple[float, float]]] = field(default_factory=dict)

    def record(self, kind: Hashable, running: float, done: float) -> None:
        self.ended.setdefault(kind, deque(maxlen=KEEP)).append((running, done))

    def cadence(self, kind: Hashable) -> Learned:
        return Learned(self, kind)


@dataclass
class Learned:
    """One wait: polls closing in on the earliest end seen for its kind (half the way there each
    time, 1-4 intervals apart), then fine ones through the spread of ends seen (two to four
    intervals), then the interval again. With nothing seen yet, each poll waits half the time
    waited so far, from a fine step up to the interval."""

    durations: Durations
    kind: Hashable
    running: float | None = None
    """When the last look found the operation still running (None: no look yet did)."""

    def delay(self, elapsed: float) -> float:
        self.running = elapsed
        interval = self.durations.interval
        ended = self.durations.ended.get(self.kind)
        if not ended:
            return min(interval, max(interval / FINE, elapsed / 2))
        earliest = min(r for r, _ in ended)
        latest = max(d for _, d in ended)
        if elapsed < earliest:  # half the way to the earliest end, within 1-4 intervals
            left = earliest - elapsed
            return min(left, max(interval, min(left / 2, COARSE * interval)))
        if elapsed < min(max(latest, earliest + 2 * interval), earliest + COARSE * interval):
            return interval / FINE  # bounded: one slow outlier must not make every later wait poll finely
        return interval

    def finished(self, elapsed: float) -> None:
        if self.running is not None:  # done at the first look says nothing about how long it takes
            self.durations.record(self.kind, self.running, elapsed)
