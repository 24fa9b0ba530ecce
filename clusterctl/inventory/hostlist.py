"""Slurm-style hostlists (`gpu[0001-2048]`) through ClusterShell's NodeSet, with errors people can read.

NodeSet sorts what it expands; a comma-separated list is expanded part by part so
that the order written in the inventory (racks filled in the order listed) survives.

Patterns come from untrusted inventories and command lines. ClusterShell's default resolver
answers `@group` by running the shell command in its groups.conf with the group name pasted in
(https://clustershell.readthedocs.io/en/latest/config.html#external-group-sources), so every
NodeSet here is built with RESOLVER_NOGROUP, and `@` is refused before NodeSet sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A host or rack name as Slurm, Kubernetes (a DNS label) and Ansible all accept it.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters"


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


def bad_name(name: str) -> str | None:
    """Why `name` cannot be a node or rack name, or None when it can."""
    if NAME.match(name):
        return None
    return f"{name[:40]!r} is not a valid name: use {NAME_RULE}"


def expand_one(pattern: str) -> list[str]:
    """Names of one pattern (NodeSet operators such as `!` allowed), in NodeSet order."""
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet, NodeSetException

    if "@" in pattern:
        raise HostlistError(f"bad hostlist {pattern[:60]!r}: node groups (@name) are not supported; "
                            "list the names or use a group's name with --limit")
    try:
        names = list(NodeSet(pattern, resolver=RESOLVER_NOGROUP))
    except NodeSetException as exc:
        raise HostlistError(f"bad hostlist {pattern!r}: {exc}") from None
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # NodeSet leaks these on odd input
        raise HostlistError(f"bad hostlist {pattern!r}: {exc}") from None
    for name in names:
        why = bad_name(name)
        if why:
            raise HostlistError(f"bad hostlist {pattern[:60]!r}: {why}")
    return names


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
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    return str(NodeSet.fromlist(list(names), resolver=RESOLVER_NOGROUP))
