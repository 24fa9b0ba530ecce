"""`$expand` one level (DSP0266 7.3.1), as iDRAC9 answers `Chassis/System.Embedded.1?$expand=.($levels=1)`.

Real iDRACs accept `$expand` with `.`, `*` or `~` and `($levels=1)` (their service root says
`MaxLevels: 1`); a fleet client that reads a chassis's power and cooling, or a whole collection,
in one request instead of one per resource depends on it, so the lab offers the same:

- `.`: every subordinate reference (outside `Links`) replaced by the resource it points at;
- `~`: only the references under `Links`;
- `*`: both.

A collection's `Members` are subordinate, so a collection answers with its members in full for
every value (as iDRAC does for `~` too). Expanded resources are not expanded further (one level).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from clusterctl.sim.protocol import Request, Response

EXPAND = "$expand"
MAX_LEVELS = 1
_VALUE = re.compile(r"^[.*~](\(\$levels=1\))?$")
LINKS = "Links"

MemberGetter = Callable[[Request], "dict[str, Any] | Response | None"]


def wants_expand(req: Request) -> str | None:
    """The `$expand` value of a GET, or None when it asked for none."""
    values = req.query.get(EXPAND)
    return values[0] if values else None


def valid_expand(value: str) -> bool:
    return bool(_VALUE.match(value))


def expand_resource(req: Request, body: dict[str, Any], value: str, get: MemberGetter) -> dict[str, Any]:
    """The body with the references `value` selects replaced by their resources (one level).

    A reference that does not answer 200 stays a reference, as a BMC does when a device goes
    away between listing and reading; a collection's next page keeps asking for the expansion.
    """
    kind = value[0]
    fetch = _fetcher(req, get)
    if isinstance(body.get("Members"), list):
        out = dict(body, Members=[fetch(m) for m in body["Members"]])
        link = out.get("Members@odata.nextLink")
        if isinstance(link, str) and EXPAND not in link:
            out["Members@odata.nextLink"] = f"{link}{'&' if '?' in link else '?'}{EXPAND}={value}"
        return out
    out = {}
    for key, item in body.items():
        if key == LINKS:
            out[key] = _walk(item, fetch) if kind in "*~" else item
        elif key.startswith("@") or kind == "~":
            out[key] = item
        else:
            out[key] = _walk(item, fetch)
    return out


def _fetcher(req: Request, get: MemberGetter) -> Callable[[Any], Any]:
    def fetch(ref: Any) -> Any:
        uri = ref.get("@odata.id") if _is_reference(ref) else None
        if not uri:
            return ref
        full = get(replace(req, path=uri, query={}, _json=None))
        if isinstance(full, Response):
            full = full.body if full.status == 200 and isinstance(full.body, dict) else None
        return full if isinstance(full, dict) else ref

    return fetch


def _walk(item: Any, fetch: Callable[[Any], Any]) -> Any:
    """References replaced wherever they sit (a property, a list, a nested object)."""
    if _is_reference(item):
        return fetch(item)
    if isinstance(item, dict):
        return {k: v if k.startswith("@") else _walk(v, fetch) for k, v in item.items()}
    if isinstance(item, list):
        return [_walk(v, fetch) for v in item]
    return item


def _is_reference(item: Any) -> bool:
    """`{"@odata.id": uri}` and nothing else; an inline object with a fragment URI is not one."""
    if not (isinstance(item, dict) and len(item) == 1):
        return False
    uri = item.get("@odata.id")
    return isinstance(uri, str) and "#" not in uri
