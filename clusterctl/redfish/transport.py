"""The network transport under the Redfish client's httpx API: aiohttp's connection pool and parser.

Why not httpx's own (httpcore on anyio): sweeping 2,000 BMCs is CPU-bound in the client, and the
profile put most of it in httpcore and anyio (a cancel scope around every socket read and write,
TLS through a memory-BIO stream in Python). This transport cut the client's CPU per request by
about a fifth in the lab sweep (benchmarks/bmc_sweep.py) with nothing above it changed: requests
and responses stay httpx's, and tests still mount in-process apps through httpx's own transports.

aiohttp's errors become httpx's, chosen for what the retry policy must know: whether the request
can have reached the BMC (`ConnectError`/`ConnectTimeout`: it did not; `RemoteProtocolError`,
`ReadError`, `ReadTimeout`: it may have, so only idempotent requests are repeated).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from yarl import URL


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` kept-alive connections to one BMC, opened on first use."""

    def __init__(self, *, verify: ssl.SSLContext | bool, max_connections: int) -> None:
        self._ssl = verify
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=self._ssl, limit=self._max_connections, limit_per_host=self._max_connections, use_dns_cache=True
        )
        # No cookies (Redfish authenticates by header), no decompression here (httpx's Response
        # decodes a gzip answer); the caller's headers win over aiohttp's defaults.
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        data: bytes | AsyncIterator[bytes] | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: a firmware image, read from disk as it is sent
            # httpx has set Content-Length (the file's size is known), so aiohttp sends it as is,
            # not chunked: BMCs' upload handlers are not all known to take chunked bodies.
            data = _chunks(request.stream)
        with _mapped_errors(request):
            async with session.request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx has quoted it already
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as response:
                body = await response.read()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _chunks(stream: httpx.AsyncByteStream | httpx.SyncByteStream) -> AsyncIterator[bytes]:
    assert isinstance(stream, httpx.AsyncByteStream), "the async client renders async streams"
    async for chunk in stream:
        yield chunk


@contextmanager
def _mapped_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # before the request was sent
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, TLS (incl. untrusted certificate)
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a malformed answer
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.NetworkError(str(exc) or type(exc).__name__, request=request) from exc
