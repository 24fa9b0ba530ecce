"""The ASGI app that serves every simulated BMC: auth, headers, errors, BMC-side faults, latency.

One app instance serves the whole fleet. It tells BMCs apart by the local address the
request came in on (`scope["server"]`), so the real process binds one socket per BMC
address and tests can mount the same app in-process with `httpx.ASGITransport`
(base URL `https://127.1.0.1:8443`). Per-request work is a dict lookup, a settle of one
BMC and a small JSON dump; latency is `asyncio.sleep`, which costs no CPU. The URI table
is in `routes`, the write handlers in `actions`, request/response shapes in `protocol`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from clusterctl import log
from clusterctl.sim import privileges
from clusterctl.sim.bmc import BMC, ActionError
from clusterctl.sim.expand import EXPAND, expand_resource, valid_expand, wants_expand
from clusterctl.sim.protocol import Request, Response, err, error_body, etag_of, missing, normalize
from clusterctl.sim.query import FILTER, SELECT, select
from clusterctl.sim.resources import V1
from clusterctl.sim.routes import find_route

_log = log.get("sim")

if TYPE_CHECKING:
    from clusterctl.sim.fleet import SimulatedFleet

UNREACHABLE_CAP_S = 300.0  # a blackholed request gives up after this many real seconds
PUBLIC = {"/redfish", f"{V1}/", f"{V1}/odata", f"{V1}/$metadata"}
SUPPORTED_QUERY = {"$skip", "$top", SELECT, FILTER}
UNSUPPORTED_QUERY = {"only", "excerpt"}  # besides every other $-parameter

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class LabApp:
    def __init__(
        self,
        fleet: SimulatedFleet,
        *,
        latency_ms: float = 0.0,
        control: Callable[[dict[str, Any], Receive, Send], Awaitable[None]] | None = None,
        control_address: tuple[str, int] | None = None,
    ) -> None:
        self.fleet = fleet
        self.latency_s = latency_ms / 1000.0
        self.control = control
        self.control_address = control_address
        self._rng = random.Random(7)  # noqa: S311 - fault injection, not security

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        server = scope.get("server") or ("", 0)
        if self.control and self.control_address and tuple(server) == self.control_address:
            await self.control(scope, receive, send)
            return
        bmc = self.fleet.by_address.get(server[0])
        if bmc is None:
            await _send(
                send,
                Response(404, error_body("Base.1.12.ResourceMissingAtURI", "No BMC at this address.")),
                scope["method"] == "HEAD",
            )
            return
        response = await self.handle(bmc, scope, receive)
        await _send(send, response, scope["method"] == "HEAD")

    async def handle(self, bmc: BMC, scope: dict[str, Any], receive: Receive) -> Response:
        self.fleet.activity += 1
        bmc.journal.requests += 1
        await self._wait_reachable(bmc)
        delay = self.latency_s + sum(p["delay_ms"] for p in bmc.hw.faults_of("bmc_slow")) / 1000.0
        if delay > 0:
            await asyncio.sleep(delay)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        for params in bmc.hw.faults_of("bmc_503"):
            if self._rng.random() < float(params["rate"]):
                return Response(
                    503,
                    error_body(
                        "Base.1.12.ServiceTemporarilyUnavailable",
                        f"The service is temporarily unavailable. Retry in {params['retry_after']} seconds.",
                        [str(params["retry_after"])],
                    ),
                    {"Retry-After": str(params["retry_after"])},
                )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        req = Request(scope["method"], normalize(scope["path"]), query, headers, body, bmc)
        try:
            bmc.settle()
            return self.dispatch(req)
        except ActionError as exc:
            return err(exc)
        except Exception:  # a simulator bug must not look like a dropped connection
            _log.exception("%s %s %s failed", bmc.address, req.method, req.path)
            return Response(
                500,
                error_body(
                    "Base.1.12.InternalError",
                    "The request failed due to an internal service error. The service is still operational.",
                ),
            )

    async def _wait_reachable(self, bmc: BMC) -> None:
        """A blackholed or resetting iDRAC: hold the request until it is back (or give up)."""
        waited = 0.0
        while waited < UNREACHABLE_CAP_S:
            remaining = bmc.resetting()
            if remaining is None and not bmc.hw.has_fault("bmc_unreachable"):
                return
            step = min(0.5, remaining) if remaining is not None else 0.5
            step = max(step, 0.01)
            await asyncio.sleep(step)
            waited += step

    def dispatch(self, req: Request) -> Response:
        if req.method == "POST" and req.path.endswith("/Members"):
            req.path = req.path[: -len("/Members")]  # POST to Members is POST to the collection
        found = find_route(req.path)
        if found is None:
            return missing(req)
        route, params = found
        public = req.path in PUBLIC or (req.path == f"{V1}/SessionService/Sessions" and req.method == "POST")
        if not public and not self._authorized(req):
            return Response(
                401,
                error_body(
                    "Base.1.12.NoValidSession",
                    "There is no valid session established with the implementation.",
                ),
                {"WWW-Authenticate": 'Basic realm="RedfishService"'},
            )
        denied = None if public else privileges.refusal(req)
        if denied is not None:
            return denied
        method = "get" if req.method == "HEAD" else req.method.lower()
        handler = getattr(route, method, None) if method in ("get", "post", "patch", "delete") else None
        if handler is None:
            return Response(
                405,
                error_body(
                    "Base.1.12.OperationNotAllowed",
                    f"The HTTP method {req.method} is not allowed on the URI {req.path}.",
                ),
                {"Allow": route.allow},
            )
        if (
            method in ("post", "patch")
            and req.body
            and not req.headers.get("content-type", "json").startswith(("application/json", "multipart/form-data"))
        ):
            return Response(
                415,
                error_body(
                    "Base.1.12.UnsupportedMediaType",
                    "The request specified a Content-Type that is not supported.",
                ),
            )
        if req.headers.get("odata-version", "4.0") != "4.0":
            return Response(
                412,
                error_body(
                    "Base.1.12.PreconditionFailed",
                    "The OData-Version requested is not supported; this service supports 4.0.",
                ),
            )
        expand = wants_expand(req) if method == "get" else None
        if method == "get":
            bad = sorted(
                k
                for k in req.query
                if k in UNSUPPORTED_QUERY
                or k.startswith("$")
                and k not in SUPPORTED_QUERY
                and not (k == EXPAND and expand is not None and valid_expand(expand))
            )
            if bad:
                return Response(
                    501,
                    error_body(
                        "Base.1.12.QueryNotSupported",
                        f"The query parameter {bad[0]} is not supported.",
                        [bad[0]],
                    ),
                )
        result = handler(req, **params)
        if result is None:
            return missing(req)
        if method == "get" and req.query.get(FILTER) and not (isinstance(result, dict) and "Members" in result):
            return Response(
                400,
                error_body(
                    "Base.1.12.QueryNotSupportedOnResource",
                    f"Querying with $filter is not supported on the requested resource {req.path}.",
                ),
            )
        if expand is not None and isinstance(result, dict) and (not public or self._authorized(req)):
            # A public resource (the service root) expands only for a client that may read what it links.
            result = expand_resource(req, result, expand, self._member)
        if method == "get" and req.query.get(SELECT) and isinstance(result, dict):
            result = select(result, req.query[SELECT][0])
        response = result if isinstance(result, Response) else Response(200, result)
        response.headers.setdefault("Allow", route.allow)
        if method == "get" and isinstance(response.body, dict) and response.status == 200:
            tag = etag_of(response.body)
            response.headers["ETag"] = tag
            if req.headers.get("if-none-match") == tag:
                return Response(304, None, {"ETag": tag, "Allow": route.allow})
        if isinstance(response.body, dict) and "@odata.type" in response.body:
            kind = response.body["@odata.type"].lstrip("#").split(".")[0]
            response.headers.setdefault("Link", f"<http://redfish.dmtf.org/schemas/v1/{kind}.json>; rel=describedby")
        return response

    def _member(self, req: Request) -> dict[str, Any] | Response | None:
        """A referenced resource as a GET of its own URI would answer it (for `$expand`)."""
        req.path = normalize(req.path)
        found = find_route(req.path)
        handler = found[0].get if found else None
        if handler is None or found is None:
            return None
        try:
            return handler(req, **found[1])
        except ActionError:
            return None  # the reference stays a reference, as a failed member read does on iDRAC

    def _authorized(self, req: Request) -> bool:
        """True for a valid session token or basic credentials; the account is kept in `req.user`."""
        token = req.headers.get("x-auth-token")
        if token:
            session = req.bmc.session_for(token)
            req.user = session.user if session else ""
            return session is not None
        auth = req.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
            ok = req.bmc.check_password(user, password)
            req.user = user if ok else ""
            return ok
        return False


async def _send(send: Send, response: Response, head: bool) -> None:
    headers = {
        "OData-Version": "4.0",
        "Cache-Control": "no-cache",
        "X-Frame-Options": "DENY",
        "Strict-Transport-Security": "max-age=63072000",
        **response.headers,
    }
    payload = b""
    if isinstance(response.body, dict):
        payload = json.dumps(response.body, separators=(",", ":")).encode()
        headers.setdefault("Content-Type", "application/json;charset=utf-8")
    elif isinstance(response.body, str):
        payload = response.body.encode()
    if response.status in (204, 304):
        payload = b""
    headers["Content-Length"] = str(len(payload))
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else payload})
