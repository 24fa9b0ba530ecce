"""The lab's own small API on 127.0.0.1 (HTTPS with the lab cert, bearer token from the lab dir).

GET /status -> {"lab": info, "servers": [per-server report]}; GET /faults -> [faults];
POST /faults {node, kind, params} -> the fault with its defaults; DELETE /faults?node=&kind=
-> {"cleared": n}; POST /clock {advance_s} -> {"now_s", "day"}: simulated time jumps ahead (faults
that develop over days, for tests and demos). Errors are {"error": "one line"} with status 400 (bad fault) or 401.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from clusterctl.sim.errors import FaultError
from clusterctl.sim.faults import make_fault

MAX_ADVANCE_S = 10 * 365 * 86_400

if TYPE_CHECKING:
    from clusterctl.sim.fleet import SimulatedFleet


class ControlAPI:
    def __init__(self, fleet: SimulatedFleet, token: str, info: dict[str, Any]) -> None:
        self.fleet = fleet
        self.token = token
        self.info = info

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        status, payload = self.handle(
            scope["method"],
            scope["path"].rstrip("/"),
            parse_qs(scope.get("query_string", b"").decode()),
            headers,
            body,
        )
        data = json.dumps(payload, default=str).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        given = headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return 401, {"error": "missing or wrong control token"}
        try:
            if path == "/status" and method == "GET":
                return 200, {"lab": self.info, "servers": self.fleet.report()}
            if path == "/faults" and method == "GET":
                return 200, self.fleet.faults()
            if path == "/faults" and method == "POST":
                doc = json.loads(body or b"{}")
                if not isinstance(doc, dict):
                    raise FaultError("expected a JSON object {node, kind, params}")
                fault = make_fault(
                    str(doc.get("node")), str(doc.get("kind")), doc.get("params") or {}, self.fleet.names
                )
                self.fleet.add_fault(fault)
                return 201, fault.as_dict()
            if path == "/clock" and method == "POST":
                doc = json.loads(body or b"{}")
                advance = doc.get("advance_s") if isinstance(doc, dict) else None
                if isinstance(advance, bool) or not isinstance(advance, int | float) \
                        or not 0 <= advance <= MAX_ADVANCE_S:
                    raise FaultError("expected {\"advance_s\": seconds}, between 0 and ten years")
                self.fleet.clock.advance(float(advance))
                self.fleet.activity += 1
                now = self.fleet.clock.now()
                return 200, {"now_s": now, "day": now / 86400}
            if path == "/faults" and method == "DELETE":
                node = query["node"][0] if query.get("node") else None
                kind = query["kind"][0] if query.get("kind") else None
                return 200, {"cleared": self.fleet.clear_faults(node, kind)}
        except FaultError as exc:
            return 400, {"error": str(exc)}
        except ValueError:
            return 400, {"error": "malformed JSON"}
        return 404, {"error": f"no {method} {path} in the control API"}
