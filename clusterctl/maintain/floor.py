"""The capacity floor: how many more nodes a rollout may take out of service right now.

Counted against the whole fleet the inventory describes, including nodes that are already
unavailable for reasons of their own (down, drained by someone else): the budget is for the
cluster's users, not for this rollout. As in the GPU Operator's upgrade controller and
Kubernetes' `maxUnavailable`, a percentage rounds down but never below one node, or nothing
could ever be maintained.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from clusterctl.counts import count_or_share
from clusterctl.errors import ClusterctlError


class FloorOptionError(ClusterctlError):
    """A capacity option cannot be read."""


def parse_count(text: str, total: int, option: str) -> int:
    """`5` or `10%` of `total` -> nodes (a percentage rounds down, at least 1)."""
    try:
        return count_or_share(text, total, rounding="down")
    except ValueError:
        raise FloorOptionError(f"{option} {text!r}: expected a count (5) or a percentage (10%)") from None


def parse_min_available(items: Sequence[str], partitions: Mapping[str, Collection[str]]) -> dict[str, int]:
    """`PARTITION=P%` (or a count) -> {partition: nodes that must stay available}."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise FloorOptionError(f"--min-available {item!r}: expected PARTITION=P% or PARTITION=N")
        if name not in partitions:
            known = ", ".join(sorted(partitions)) or "none"
            raise FloorOptionError(f"--min-available {item!r}: no partition {name!r} in the inventory "
                                   f"(known: {known})")
        size = len(partitions[name])
        if value.strip().endswith("%"):
            try:
                pct = float(value.strip()[:-1])
            except ValueError:
                pct = -1.0
            if not 0 <= pct <= 100:
                raise FloorOptionError(f"--min-available {item!r}: a percentage from 0 to 100")
            out[name] = math.ceil(size * pct / 100)
        else:
            try:
                out[name] = int(value)
            except ValueError:
                raise FloorOptionError(f"--min-available {item!r}: expected PARTITION=P% or PARTITION=N") from None
    return out


@dataclass
class Floor:
    total: int
    max_unavailable: int
    partitions: dict[str, set[str]] = field(default_factory=dict)
    """partition -> its nodes (from the inventory)"""
    min_available: dict[str, int] = field(default_factory=dict)

    def choose(self, candidates: Sequence[str], unavailable: Collection[str], limit: int | None = None) -> list[str]:
        """The candidates, in order, that may go out of service now on top of `unavailable`."""
        down = set(unavailable)
        chosen: list[str] = []
        for node in candidates:
            if limit is not None and len(chosen) >= limit:
                break
            if node in down:
                continue
            if len(down) + 1 > self.max_unavailable:
                break
            if not self._partitions_allow(node, down):
                continue
            chosen.append(node)
            down.add(node)
        return chosen

    def _partitions_allow(self, node: str, down: set[str]) -> bool:
        for name, members in self.partitions.items():
            if node in members and name in self.min_available:
                available = len(members - down) - 1
                if available < self.min_available[name]:
                    return False
        return True

    def broken(self, unavailable: Collection[str]) -> list[str]:
        """What the floor forbids in this picture of the fleet (empty: it holds)."""
        down = set(unavailable)
        found = []
        if len(down) > self.max_unavailable:
            found.append(f"{len(down)} nodes unavailable, at most {self.max_unavailable} allowed")
        for name, need in self.min_available.items():
            available = len(self.partitions[name] - down)
            if available < need:
                found.append(f"partition {name}: {available} available, at least {need} required")
        return found
