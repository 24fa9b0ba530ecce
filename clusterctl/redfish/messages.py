"""Redfish error bodies (`error` + `@Message.ExtendedInfo`) turned into one readable line.

Operators act on the MessageId (e.g. `Base.1.8.PropertyValueNotInList`, Dell's `SYS011`) and
the resolution text, so both are kept; the raw body is not, it can echo submitted values.
"""

from __future__ import annotations

from typing import Any

import httpx

from clusterctl.errors import BMCAuthFailed, BMCError, BMCRequestFailed


class RedfishRequestFailed(BMCRequestFailed):
    """A `BMCRequestFailed` that also keeps the MessageIds, for code that reacts to a specific one."""

    def __init__(self, message: str, *, bmc: str | None, status: int | None, ids: list[str]) -> None:
        super().__init__(message, bmc=bmc, status=status)
        self.message_ids = ids


def extended_info(body: Any) -> list[dict[str, Any]]:
    """Messages from an error body or a resource (both places are used by real BMCs)."""
    if not isinstance(body, dict):
        return []
    found: list[dict[str, Any]] = []
    err = body.get("error")
    if isinstance(err, dict):
        found.extend(m for m in err.get("@Message.ExtendedInfo", []) or [] if isinstance(m, dict))
    found.extend(m for m in body.get("@Message.ExtendedInfo", []) or [] if isinstance(m, dict))
    return found


def describe(body: Any) -> str:
    """`MessageId: Message (Resolution)` for each message, `; `-joined; falls back to error.message."""
    parts = []
    for msg in extended_info(body):
        text = str(msg.get("Message") or "").strip()
        mid = msg.get("MessageId")
        line = f"{mid}: {text}" if mid and text else str(mid or text)
        resolution = str(msg.get("Resolution") or "").strip()
        if resolution and resolution.lower() not in ("none", "none."):
            line += f" ({resolution})"
        if line:
            parts.append(line)
    if not parts and isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        parts.append(": ".join(str(x) for x in (err.get("code"), err.get("message")) if x))
    return "; ".join(p for p in parts if p)


def message_ids(body: Any) -> list[str]:
    return [str(m["MessageId"]) for m in extended_info(body) if m.get("MessageId")]


def error_for(response: httpx.Response, bmc: str) -> BMCError:
    """The exception a failed response deserves: auth failures apart, so fleets can report them as such."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = describe(body) or response.reason_phrase or "no detail"
    what = f"{response.request.method} {response.request.url.path} -> {response.status_code}: {detail}"
    if response.status_code in (401, 403):
        return BMCAuthFailed(what, bmc=bmc)
    return RedfishRequestFailed(what, bmc=bmc, status=response.status_code, ids=message_ids(body))
