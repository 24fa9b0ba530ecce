"""The aiohttp transport under the client, over real sockets: bodies go out whole, and its errors
keep the meaning the retry policy needs (a request that may have reached the BMC is repeated only
when it is idempotent)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from support.asgi import served
from support.fakebmc import FakeBMC, Req, Resp

from clusterctl.errors import BMCUnreachable
from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy
from clusterctl.redfish.resources.update import multipart_push

FAST = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.1, jitter=0, max_total=10)


def target(url: str) -> BMCTarget:
    return BMCTarget(name="bmc", base_url=url, username="admin", password="s3cret-pw")


def test_a_multipart_firmware_upload_arrives_whole(tmp_path: Any) -> None:
    image = tmp_path / "BIOS_X.EXE"
    image.write_bytes(bytes(range(256)) * 400)  # 100 kB, every byte value
    bmc = FakeBMC()
    bmc.add("/redfish/v1/UpdateService", {"MultipartHttpPushUri": "/redfish/v1/UpdateService/upload"})
    received: list[Req] = []

    def accept(req: Req) -> Resp:
        received.append(req)
        return Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/1"})

    bmc.on("POST", "/redfish/v1/UpdateService/upload", accept)

    async def go() -> httpx.Response:
        async with RedfishClient(target(server.url), retry=FAST) as client:
            return await multipart_push(client, image)

    with served(bmc) as server:
        answer = asyncio.run(go())
    assert answer.status_code == 202 and answer.headers["Location"].endswith("/Tasks/1")
    (req,) = received
    assert req.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(req.headers["content-length"]) == len(req.body)
    assert image.read_bytes() in req.body
    assert b'"@Redfish.OperationApplyTime"' in req.body


def test_a_firmware_upload_refused_with_503_is_sent_again_whole_from_the_file(tmp_path: Any) -> None:
    """The image is streamed from disk, not held in memory: a retry must read it again from the start."""
    image = tmp_path / "HGX_X.EXE"
    image.write_bytes(bytes(range(256)) * 1024)  # 256 kB: several of httpx's 64 kB chunks
    bmc = FakeBMC()
    bmc.add("/redfish/v1/UpdateService", {"MultipartHttpPushUri": "/redfish/v1/UpdateService/upload"})
    received: list[Req] = []

    def busy_then_accept(req: Req) -> Resp:
        received.append(req)
        if len(received) == 1:
            return Resp(503, {}, {"Retry-After": "0"})
        return Resp(202, None, {"Location": "/redfish/v1/TaskService/Tasks/2"})

    bmc.on("POST", "/redfish/v1/UpdateService/upload", busy_then_accept)

    async def go() -> httpx.Response:
        async with RedfishClient(target(server.url), retry=FAST) as client:
            return await multipart_push(client, image)

    with served(bmc) as server:
        answer = asyncio.run(go())
    assert answer.status_code == 202
    first, second = received
    for req in received:
        assert "transfer-encoding" not in req.headers  # sized, not chunked
        assert int(req.headers["content-length"]) == len(req.body)
        assert image.read_bytes() in req.body
    boundary = second.headers["content-type"].split("boundary=")[1]
    assert first.body.replace(first.headers["content-type"].split("boundary=")[1].encode(), b"") == \
        second.body.replace(boundary.encode(), b"")


def test_a_read_timeout_repeats_a_get_but_never_a_post() -> None:
    bmc = FakeBMC()

    async def hang(req: Req) -> Resp:
        await asyncio.sleep(5)
        return Resp(200, {})

    bmc.on("GET", "/redfish/v1/Systems", hang)
    bmc.on("POST", "/redfish/v1/Systems/Actions/Reset", hang)

    async def call(method: str, path: str) -> None:
        async with RedfishClient(target(server.url), retry=FAST, timeout=httpx.Timeout(0.3)) as client:
            await client.request(method, path, **({"json": {}} if method == "POST" else {}))

    with served(bmc) as server:
        with pytest.raises(BMCUnreachable, match="ReadTimeout"):
            asyncio.run(call("GET", "/redfish/v1/Systems"))
        with pytest.raises(BMCUnreachable, match="ReadTimeout"):
            asyncio.run(call("POST", "/redfish/v1/Systems/Actions/Reset"))
    assert len(bmc.requests("GET", "/redfish/v1/Systems")) == FAST.attempts
    assert len(bmc.requests("POST", "/redfish/v1/Systems/Actions/Reset")) == 1  # it may have been applied
    assert len(bmc.deleted_sessions) == 2  # every session was closed on the way out
