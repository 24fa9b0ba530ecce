"""`--limit`: which nodes a command acts on, by node, rack or group name.

Every command takes the same `--limit`: comma-separated hostlist patterns, each
matching node names, rack names or group names (`gpu[0001-0064],a01-r03,login`).
A pattern that matches nothing is an error, never a silent no-op: a typo in a
limit must not turn "reboot these four" into "did nothing" or worse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterctl.errors import SelectionError
from clusterctl.inventory.hostlist import HostlistError, expand_one, split_patterns

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory, Node


def select(inventory: Inventory, limit: str | None) -> list[Node]:
    """The nodes `limit` names, in inventory order; all nodes when `limit` is empty."""
    if limit is None or not limit.strip():
        return list(inventory.nodes.values())
    chosen: set[str] = set()
    for pattern in split_patterns(limit):
        try:
            names = expand_one(pattern)
        except HostlistError as exc:
            raise SelectionError(f"--limit: {exc}") from None
        matched = _match(inventory, names)
        if not matched:
            raise SelectionError(f"--limit: {pattern!r} matches no node, rack or group of {inventory.path}")
        chosen.update(matched)
    return [node for name, node in inventory.nodes.items() if name in chosen]


def _match(inventory: Inventory, names: list[str]) -> set[str]:
    matched: set[str] = set()
    for name in names:
        if name in inventory.nodes:
            matched.add(name)
        elif name in inventory.racks:
            matched.update(inventory.racks[name].nodes)
        elif name in inventory.groups:
            matched.update(inventory.groups[name])
    return matched
