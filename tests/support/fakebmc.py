"""A small scriptable Redfish service for behaviour tests: a plain ASGI app (no framework), used
in-process through httpx.ASGITransport or served for real by uvicorn on 127.0.0.1 (support.asgi: TLS,
outages).

It implements what the client's protocol handling needs: sessions (create/delete, token check,
basic auth fallback), resources with ETags and If-Match, and per-route handlers for the rest.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "redfish"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Resp:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Req], "Resp | Awaitable[Resp]"]


def error_body(message_id: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": message_id,
            "message": message,
            "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message}],
        }
    }


class FakeBMC:
    def __init__(
        self, *, user: str = "admin", password: str = "s3cret-pw", sessions: bool = True, basic: bool = True
    ) -> None:
        self.user, self.password = user, password
        self.sessions_enabled, self.basic_enabled = sessions, basic
        self.resources: dict[str, dict[str, Any]] = {}
        self.etags: dict[str, str] = {}
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.log: list[Req] = []
        self.sessions: dict[str, str] = {}  # token -> session URI
        self.deleted_sessions: list[str] = []
        self._ids = itertools.count(1)
        root: dict[str, Any] = {
            "@odata.id": "/redfish/v1/",
            "Id": "RootService",
            "RedfishVersion": "1.17.0",
            "Systems": {"@odata.id": "/redfish/v1/Systems"},
        }
        if sessions:
            root["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
            root["Links"] = {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
        self.resources["/redfish/v1"] = root

    # -- scripting -------------------------------------------------------------------------

    def add(self, path: str, body: dict[str, Any], *, etag: str | None = None) -> None:
        path = path.rstrip("/")
        self.resources[path] = body
        if etag:
            self.etags[path] = etag

    def on(self, method: str, path: str, handler: Handler) -> None:
        self.handlers[(method.upper(), path.rstrip("/"))] = handler

    def requests(self, method: str | None = None, path: str | None = None) -> list[Req]:
        return [
            r
            for r in self.log
            if (method is None or r.method == method) and (path is None or r.path == path.rstrip("/"))
        ]

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        req = Req(scope["method"], scope["path"].rstrip("/") or "/", headers, body)
        self.log.append(req)
        resp = await self._dispatch(req)
        payload = (
            b""
            if resp.body is None
            else (resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode())
        )
        out_headers = [(b"content-type", b"application/json")] if payload else []
        out_headers += [(k.lower().encode(), str(v).encode()) for k, v in resp.headers.items()]
        out_headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out_headers})
        await send({"type": "http.response.body", "body": payload})

    async def _dispatch(self, req: Req) -> Resp:
        if req.path == "/redfish/v1" and req.method == "GET":
            return Resp(200, self.resources["/redfish/v1"])
        login = ("POST", "/redfish/v1/SessionService/Sessions")
        if self.sessions_enabled and (req.method, req.path) == login and login not in self.handlers:
            return self._login(req)
        if not self._authorised(req) and (req.method, req.path) != login:
            return Resp(401, error_body("Base.1.8.NoValidSession", "There is no valid session."))
        if req.method == "DELETE" and req.path in self.sessions.values():
            token = next(t for t, p in self.sessions.items() if p == req.path)
            del self.sessions[token]
            self.deleted_sessions.append(req.path)
            return Resp(204)
        handler = self.handlers.get((req.method, req.path))
        if handler is not None:
            result = handler(req)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]
        if req.method == "GET" and req.path in self.resources:
            headers = {"ETag": self.etags[req.path]} if req.path in self.etags else {}
            return Resp(200, self.resources[req.path], headers)
        if req.method == "PATCH" and req.path in self.resources:
            return self._patch(req)
        return Resp(404, error_body("Base.1.8.ResourceNotFound", f"{req.path} not found"))

    def _login(self, req: Req) -> Resp:
        creds = req.json or {}
        if creds.get("UserName") != self.user or creds.get("Password") != self.password:
            return Resp(401, error_body("Base.1.8.InsufficientPrivilege", "Login failed"))
        n = next(self._ids)
        token, uri = f"token-{n}-abcdef", f"/redfish/v1/SessionService/Sessions/{n}"
        self.sessions[token] = uri
        return Resp(201, {"@odata.id": uri, "Id": str(n)}, {"X-Auth-Token": token, "Location": uri})

    def _authorised(self, req: Req) -> bool:
        token = req.headers.get("x-auth-token")
        if token is not None:
            return token in self.sessions
        auth = req.headers.get("authorization", "")
        if self.basic_enabled and auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return (user, password) == (self.user, self.password)
        return False

    def _patch(self, req: Req) -> Resp:
        current = self.etags.get(req.path)
        wanted = req.headers.get("if-match")
        if current and wanted and wanted != current:
            return Resp(412, error_body("Base.1.8.PreconditionFailed", "ETag does not match"))
        _merge(self.resources[req.path], req.json or {})
        if current:
            self.etags[req.path] = f'W/"{int(current.strip("W/").strip(chr(34)) or 0) + 1}"'
        return Resp(204)


def _merge(into: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def load_idrac9(bmc: FakeBMC) -> FakeBMC:
    """Every recorded iDRAC9 payload, served at its own @odata.id."""
    for path in sorted((FIXTURES / "idrac9").glob("*.json")):
        body = json.loads(path.read_text())
        uri = body.get("@odata.id")
        if uri and path.stem != "firmware_inventory_page2":
            bmc.add(uri, body, etag='W/"1"' if path.stem in ("system", "bios_settings") else None)
    root = json.loads((FIXTURES / "idrac9" / "service_root.json").read_text())
    bmc.resources["/redfish/v1"].update(root)
    bmc.add("/redfish/v1/Systems", {"Members": [{"@odata.id": "/redfish/v1/Systems/System.Embedded.1"}]})
    bmc.add("/redfish/v1/Chassis", {"Members": [{"@odata.id": "/redfish/v1/Chassis/System.Embedded.1"}]})
    bmc.add("/redfish/v1/Managers", {"Members": [{"@odata.id": "/redfish/v1/Managers/iDRAC.Embedded.1"}]})
    bmc.add(
        "/redfish/v1/UpdateService",
        {
            "@odata.id": "/redfish/v1/UpdateService",
            "FirmwareInventory": {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory"},
        },
    )
    return bmc
