"""`$expand` on collections, one level (DSP0266 7.3.1), as iDRAC9 answers `FirmwareInventory?$expand=*`.

Real iDRACs accept `$expand` with `.`, `*` or `~` and `($levels=1)`; a fleet sweep that reads a
collection in one request instead of one per member depends on it, so the lab offers it for
collections. Other resources still refuse it (501): expanding their links is not simulated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from clusterctl.sim.protocol import Request, Response

EXPAND = "$expand"
_VALUE = re.compile(r"^[.*~](\(\$levels=1\))?$")

MemberGetter = Callable[[Request], "dict[str, Any] | Response | None"]


def wants_expand(req: Request) -> str | None:
    """The `$expand` value of a GET, or None when it asked for none."""
    values = req.query.get(EXPAND)
    return values[0] if values else None


def valid_expand(value: str) -> bool:
    return bool(_VALUE.match(value))


def expand_members(req: Request, body: dict[str, Any], value: str, get: MemberGetter) -> dict[str, Any]:
    """The collection page with each `{"@odata.id": uri}` member replaced by the member itself.

    A member that no longer answers 200 stays a reference, as a BMC does when a device goes
    away between listing and reading; a next page keeps asking for the expansion.
    """
    members = []
    for ref in body.get("Members", []):
        uri = ref.get("@odata.id") if isinstance(ref, dict) else None
        full = get(replace(req, path=uri, query={}, _json=None)) if uri else None
        if isinstance(full, Response):
            full = full.body if full.status == 200 and isinstance(full.body, dict) else None
        members.append(full if isinstance(full, dict) else ref)
    out = dict(body, Members=members)
    link = out.get("Members@odata.nextLink")
    if isinstance(link, str) and EXPAND not in link:
        out["Members@odata.nextLink"] = f"{link}{'&' if '?' in link else '?'}{EXPAND}={value}"
    return out
