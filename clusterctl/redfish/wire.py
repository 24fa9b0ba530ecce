"""One BMC's HTTP exchanges, straight on an httpx transport.

Why not `httpx.AsyncClient`: a Redfish client needs a base URL, default headers and Basic auth,
and nothing else the AsyncClient does on every request (merging URLs and headers through its
models again, cookie extraction, auth and redirect flows, event hooks). In the 2,000-BMC sweep
profile that machinery was about a fifth of the client's CPU. Requests and responses stay
httpx's, and so do transports: tests mount in-process apps through `httpx.ASGITransport` or
`httpx.MockTransport` exactly as before.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from clusterctl.errors import BMCRequestFailed

USER_AGENT = "clusterctl"


class Wire:
    """Requests to one base URL through one transport; `close()` releases its connections."""

    def __init__(
        self, base_url: str, transport: httpx.AsyncBaseTransport, *, timeout: httpx.Timeout, headers: dict[str, str]
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.headers = {"User-Agent": USER_AGENT, **headers}
        self._timeout = timeout.as_dict()
        self._basic: str | None = None

    def use_basic(self, credentials: tuple[str, str] | None) -> None:
        """Send `Authorization: Basic ...` with every request from now on (None: stop sending it)."""
        if credentials is None:
            self._basic = None
            return
        user, password = credentials
        self._basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def url(self, path: str) -> str:
        """A path on this BMC, or an absolute URL on this same BMC (task monitors may answer with one).

        An absolute URL elsewhere is refused: the session token or Basic credentials go with every
        request, and a BMC's answer must not be able to send them to another host.
        """
        if path.startswith(("https://", "http://")):
            if path != self.base_url and not path.startswith(self.base_url + "/"):
                raise BMCRequestFailed(f"refusing to follow {path!r}: not on {self.base_url}")
            return path
        return self.base_url + (path if path.startswith("/") else f"/{path}")

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        files: Any = None,
        basic: bool = True,
    ) -> httpx.Response:
        """One exchange, the answer read in full; `basic=False` leaves Basic auth off this one (a login)."""
        merged = dict(self.headers)
        if basic and self._basic is not None:
            merged["Authorization"] = self._basic
        if headers:
            merged.update(headers)
        request = httpx.Request(
            method, self.url(path), headers=merged, json=json, files=files, extensions={"timeout": self._timeout}
        )
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        return response

    async def close(self) -> None:
        await self.transport.aclose()
