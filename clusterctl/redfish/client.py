"""An asyncio Redfish client for one BMC: session, limits, retries, paging, ETags, task monitors.

Built for fleets: a client never outlives its `async with` block, and the session it opened is
deleted on the way out whatever happened inside (error, timeout, cancellation), because BMCs
keep only a handful of sessions and a leaked one locks the next run out for its idle timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from clusterctl import log
from clusterctl.errors import BMCAuthFailed, BMCRequestFailed, BMCUnreachable
from clusterctl.redfish.limits import Limits
from clusterctl.redfish.messages import error_for
from clusterctl.redfish.retry import ONCE, RetryableStatus, RetryPolicy, is_tls_verification_error, retrying
from clusterctl.redfish.target import BMCTarget
from clusterctl.redfish.transport import AiohttpTransport
from clusterctl.redfish.wire import Wire

_log = log.get("redfish")

SERVICE_ROOT = "/redfish/v1/"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_PAGES = 1000  # a collection that pages further than this is a BMC bug, not data
LOGOUT_TIMEOUT = 10.0


def odata_id(ref: Any) -> str | None:
    """The URI of a `{"@odata.id": ...}` reference, or None."""
    if isinstance(ref, dict):
        value = ref.get("@odata.id")
        return str(value) if value else None
    return None


class RedfishClient:
    """One BMC, one session. Use as `async with RedfishClient(target) as bmc:`."""

    def __init__(
        self,
        target: BMCTarget,
        *,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        use_sessions: bool = True,
    ) -> None:
        self.target = target
        self.limits = limits or Limits()
        self.retry = retry or RetryPolicy()
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._transport = transport
        self._use_sessions = use_sessions
        self._http: Wire | None = None
        self._session_uri: str | None = None
        self._token: str | None = None
        self.root: dict[str, Any] = {}
        self.memo: dict[str, Any] = {}
        """Service documents read once per client (they describe where things are, not their state)."""
        log.redact(target.password)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def auth_mode(self) -> str:
        return "session" if self._token else "basic"

    async def __aenter__(self) -> RedfishClient:
        transport = self._transport
        if transport is None:
            verify = self.target.ssl_context() if self.target.base_url.startswith("https") else True
            transport = AiohttpTransport(verify=verify, max_connections=self.limits.per_bmc)
        self._http = Wire(
            self.target.base_url,
            transport,
            timeout=self._timeout,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
        )
        try:
            await self._login()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        # Shielded: a cancelled caller still gets its session deleted; if the caller is
        # cancelled again while waiting, the logout task finishes on its own.
        closing = asyncio.ensure_future(self._logout_and_close())
        await asyncio.shield(closing)

    async def _logout_and_close(self) -> None:
        http, self._http = self._http, None
        if http is None:
            return
        try:
            if self._session_uri and self._token:
                try:
                    resp = await asyncio.wait_for(http.request("DELETE", self._session_uri), LOGOUT_TIMEOUT)
                    if resp.status_code >= 400 and resp.status_code != 404:
                        _log.warning("%s: logout answered %s", self.name, resp.status_code)
                except (httpx.HTTPError, TimeoutError) as exc:
                    _log.warning("%s: logout failed: %s", self.name, type(exc).__name__)
        finally:
            if self._token:
                log.forget(self._token)  # a dead session's token is worthless; keep the mask list short
            self._session_uri = self._token = None
            http.headers.pop("X-Auth-Token", None)
            await http.close()

    async def _login(self) -> None:
        """Session auth when the service offers it; basic auth otherwise (DSP0266 allows both)."""
        assert self._http is not None
        basic = (self.target.username, self.target.password)
        resp = await self._send("GET", SERVICE_ROOT, idempotent=True)
        if resp.status_code == 401:  # a few BMCs protect even the service root
            self._http.use_basic(basic)
            resp = await self._send("GET", SERVICE_ROOT, idempotent=True)
        self._raise_for(resp)
        self.root = resp.json()
        sessions = odata_id(self.root.get("Links", {}).get("Sessions"))
        if not sessions and self.root.get("SessionService"):
            sessions = "/redfish/v1/SessionService/Sessions"
        if not (self._use_sessions and sessions):
            self._http.use_basic(basic)
            return
        resp = await self._send(
            "POST",
            sessions,
            idempotent=False,
            json={"UserName": self.target.username, "Password": self.target.password},
            basic=False,
        )
        if resp.status_code in (404, 405, 501):
            self._http.use_basic(basic)
            return
        if resp.status_code in (401, 403):
            raise BMCAuthFailed(f"session login refused ({resp.status_code}): check user and password", bmc=self.name)
        # Anything else (e.g. 400/503 with SessionLimitExceeded) keeps the BMC's own explanation.
        self._raise_for(resp)
        token = resp.headers.get("X-Auth-Token")
        if not token:
            self._http.use_basic(basic)
            return
        log.redact(token)
        self._token = token
        self._session_uri = resp.headers.get("Location") or odata_id(_json_or_none(resp))
        self._http.use_basic(None)  # the token suffices
        self._http.headers["X-Auth-Token"] = token

    # -- requests --------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, idempotent: bool, retry: RetryPolicy | None = None,
                    **kwargs: Any) -> httpx.Response:
        """One request with limits and retries; transport failures become BMCUnreachable."""
        assert self._http is not None, "use RedfishClient inside `async with`"
        http = self._http
        try:
            async for attempt in retrying(retry or self.retry, idempotent=idempotent):
                with attempt:
                    async with self.limits.slot(self.name):
                        resp = await http.request(method, path, **kwargs)
                    if resp.status_code in (429, 502, 503, 504):
                        raise RetryableStatus(resp)
                    return resp
        except RetryableStatus as exc:
            return exc.response
        except httpx.TransportError as exc:
            if is_tls_verification_error(exc):
                raise BMCUnreachable(
                    "TLS certificate not trusted (pass the site CA: --ca or ca_file; or --insecure)",
                    bmc=self.name,
                ) from exc
            raise BMCUnreachable(f"{method} {path}: {type(exc).__name__}: {exc or 'no detail'}", bmc=self.name) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _raise_for(self, resp: httpx.Response) -> None:
        if resp.status_code >= 400:
            raise error_for(resp, self.name)

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request that must succeed (2xx/3xx); a session that expired is renewed once."""
        idempotent = method.upper() != "POST"
        resp = await self._send(method, path, idempotent=idempotent, headers=headers, retry=retry, **kwargs)
        if resp.status_code == 401 and self._token:
            _log.info("%s: session expired, logging in again", self.name)
            log.forget(self._token)  # dead after an iDRAC reset: every node had one left in the mask list
            self._token = self._session_uri = None
            assert self._http is not None
            self._http.headers.pop("X-Auth-Token", None)
            await self._login()
            resp = await self._send(method, path, idempotent=idempotent, headers=headers, retry=retry, **kwargs)
        self._raise_for(resp)
        return resp

    async def look(self, path: str) -> httpx.Response | None:
        """One GET for a poll loop: None when the BMC does not answer or asks to be asked later.

        A loop polling a reset or a job is its own retry; the usual retries with backoff inside
        each look stacked up to seconds of lag after a BMC came back from its own reset.
        """
        try:
            return await self.request("GET", path, retry=ONCE)
        except BMCUnreachable:
            return None
        except BMCRequestFailed as exc:
            if exc.status in (429, 502, 503, 504):
                return None
            raise

    async def get(self, path: str) -> dict[str, Any]:
        resp = await self.request("GET", path)
        body = _json_or_none(resp)
        if not isinstance(body, dict):
            raise BMCRequestFailed(f"GET {path}: answer is not a JSON object", bmc=self.name, status=resp.status_code)
        return body

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.request("POST", path, json=body if body is not None else {})

    async def delete(self, path: str) -> httpx.Response:
        return await self.request("DELETE", path)

    async def patch(self, path: str, body: dict[str, Any], *, etag: str | None = None) -> httpx.Response:
        """PATCH with `If-Match` when an ETag is known, so a concurrent change is refused (412), not lost."""
        headers = {"If-Match": etag} if etag else None
        return await self.request("PATCH", path, json=body, headers=headers)

    async def patch_fresh(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """Read the resource's current ETag (header or @odata.etag), then PATCH with If-Match."""
        resp = await self.request("GET", path)
        etag = resp.headers.get("ETag") or (_json_or_none(resp) or {}).get("@odata.etag")
        return await self.patch(path, body, etag=etag)

    # -- collections -----------------------------------------------------------------------

    async def member_uris(self, collection: str) -> AsyncIterator[str]:
        """Member URIs of a collection, following `Members@odata.nextLink` page by page."""
        async for member in self.members_raw(collection):
            uri = odata_id(member)
            if uri:
                yield uri

    async def members_raw(self, collection: str) -> AsyncIterator[dict[str, Any]]:
        """Members as listed (a reference, or the whole member where the BMC expands it)."""
        page: str | None = collection
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            if page is None or page in seen:
                return
            seen.add(page)
            body = await self.get(page)
            for member in body.get("Members", []) or []:
                if isinstance(member, dict):
                    yield member
            page = body.get("Members@odata.nextLink")
        _log.warning("%s: %s has more than %d pages; stopped", self.name, collection, MAX_PAGES)

    async def members(
        self, collection: str, *, limit: int | None = None, expand: bool = False
    ) -> list[dict[str, Any]]:
        """Every member in full, fetched concurrently (the per-BMC limit keeps this polite).

        `expand`: ask for the members in the collection's own answer (`$expand`) where the BMC
        offers it, one request instead of one per member; refused, members are read one by one.
        """
        query = self.expand_query if expand and "?" not in collection else None
        if query is not None:
            try:
                return await self._members(f"{collection}?{query}", limit)
            except BMCRequestFailed as exc:
                if exc.status not in (400, 501):
                    raise
        return await self._members(collection, limit)

    async def _members(self, collection: str, limit: int | None) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        async for member in self.members_raw(collection):
            listed.append(member)
            if limit is not None and len(listed) >= limit:
                break

        def is_reference(member: dict[str, Any]) -> bool:
            return bool(odata_id(member)) and set(member) <= {"@odata.id", "@odata.type", "@odata.etag"}

        async def full(member: dict[str, Any]) -> dict[str, Any]:
            return await self.get(odata_id(member) or "") if is_reference(member) else member

        if not any(is_reference(m) for m in listed):
            return listed  # expanded by the BMC (`$expand`): no task per member, across a fleet it adds up
        return list(await asyncio.gather(*(full(m) for m in listed)))

    # -- $expand ---------------------------------------------------------------------------

    @property
    def expand_query(self) -> str | None:
        """`$expand=.($levels=1)` when the service root says it can expand subordinates, else None.

        DSP0266 7.3.1: `NoLinks` offers `.`, `Levels` the `$levels` option. One level is what
        iDRAC9 offers (`MaxLevels: 1`) and what a chassis's power and cooling need.
        """
        features = self.root.get("ProtocolFeaturesSupported")
        expand = features.get("ExpandQuery") if isinstance(features, dict) else None
        if not (isinstance(expand, dict) and expand.get("NoLinks")):
            return None
        return "$expand=.($levels=1)" if expand.get("Levels") else "$expand=."

    async def get_expanded(self, path: str) -> dict[str, Any]:
        """The resource with its subordinate references expanded one level where the BMC can.

        A BMC that advertises `$expand` but refuses it here (400/501) gets a plain GET: the
        caller follows the references itself, as it must for BMCs without `$expand`.
        """
        query = self.expand_query
        if query is None or "?" in path:
            return await self.get(path)
        try:
            return await self.get(f"{path}?{query}")
        except BMCRequestFailed as exc:
            if exc.status not in (400, 501):
                raise
            _log.debug("%s: %s refused $expand (%s); reading it plainly", self.name, path, exc.status)
            return await self.get(path)

    async def link(self, resource: dict[str, Any], key: str) -> dict[str, Any] | None:
        """Follow `resource[key]` when it is a reference; None when the BMC does not offer it."""
        uri = odata_id(resource.get(key))
        return await self.get(uri) if uri else None


def _json_or_none(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None
