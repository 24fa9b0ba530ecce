"""Slurm-style hostlists (`gpu[0001-2048]`) through ClusterShell's NodeSet, with errors people can read.

NodeSet sorts what it expands; a comma-separated list is expanded part by part so
that the order written in the inventory (racks filled in the order listed) survives.
"""

from __future__ import annotations

from collections.abc import Iterable


class HostlistError(ValueError):
    """A pattern NodeSet cannot parse; the message says which pattern and why."""


def split_patterns(text: str) -> list[str]:
    """Split on the commas that separate patterns, not those inside `[01-04,07]`."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def expand_one(pattern: str) -> list[str]:
    """Names of one pattern (NodeSet operators such as `!` allowed), in NodeSet order."""
    from ClusterShell.NodeSet import NodeSet, NodeSetException

    try:
        return list(NodeSet(pattern))
    except NodeSetException as exc:
        raise HostlistError(f"bad hostlist {pattern!r}: {exc}") from None
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # NodeSet leaks these on odd input
        raise HostlistError(f"bad hostlist {pattern!r}: {exc}") from None


def expand(text: str) -> list[str]:
    """Every name of a comma-separated hostlist, in written order, each once."""
    if not isinstance(text, str) or not text.strip():
        raise HostlistError("empty hostlist")
    seen: dict[str, None] = {}
    for part in split_patterns(text):
        for name in expand_one(part):
            seen.setdefault(name, None)
    if not seen:
        raise HostlistError(f"hostlist {text!r} names no hosts")
    return list(seen)


def fold(names: Iterable[str]) -> str:
    """The shortest hostlist for `names`, for messages about many nodes at once."""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(list(names)))
