"""Simulated time: real time multiplied by `--time-scale`.

Jobs, tasks and reboots carry deadlines in simulated seconds and are settled lazily
when a request observes them, so an idle fleet costs nothing: no per-node timers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SimClock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time scale must be positive")
        self.time_scale = time_scale
        self._real0 = time.monotonic()
        self._epoch0 = time.time()
        self._offset = 0.0

    def now(self) -> float:
        """Simulated seconds since the lab started."""
        return (time.monotonic() - self._real0) * self.time_scale + self._offset

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (tests), as if `seconds` had passed."""
        self._offset += seconds

    def wall(self) -> float:
        """The simulated instant as seconds since the epoch: what a lab node's clock reads."""
        return self._epoch0 + self.now()

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.time_scale

    def iso(self, sim_t: float | None = None) -> str:
        """A wall-clock timestamp for a simulated instant, as Redfish writes them."""
        t = self.now() if sim_t is None else sim_t
        stamp = datetime.fromtimestamp(self._epoch0 + t, tz=UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S+00:00")
