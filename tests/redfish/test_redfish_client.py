"""Protocol behaviour of RedfishClient against the fake BMC in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC

import httpx
import pytest
from support.fakebmc import FakeBMC, Req, Resp, error_body, fixture

from clusterctl import log
from clusterctl.errors import BMCAuthFailed, BMCRequestFailed
from clusterctl.redfish import BMCTarget, Limits, RedfishClient, RetryPolicy
from clusterctl.redfish.messages import RedfishRequestFailed

FAST = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=2.0, jitter=0.0, max_total=10)


def target(password: str = "s3cret-pw", name: str = "bmc1") -> BMCTarget:
    return BMCTarget(name=name, base_url=f"http://{name}.test", username="admin", password=password)


def client(
    bmc: FakeBMC, *, password: str = "s3cret-pw", retry: RetryPolicy = FAST, limits: Limits | None = None
) -> RedfishClient:
    return RedfishClient(target(password), transport=httpx.ASGITransport(app=bmc), retry=retry, limits=limits)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_session_is_created_used_and_deleted() -> None:
    bmc = FakeBMC()
    bmc.add("/redfish/v1/Systems", {"Members": []})

    async def go() -> str:
        async with client(bmc) as c:
            await c.get("/redfish/v1/Systems")
            return c.auth_mode

    assert run(go()) == "session"
    login = bmc.requests("POST", "/redfish/v1/SessionService/Sessions")
    assert len(login) == 1
    systems = bmc.requests("GET", "/redfish/v1/Systems")[0]
    assert systems.headers["x-auth-token"].startswith("token-1")
    assert "authorization" not in systems.headers
    assert bmc.deleted_sessions == ["/redfish/v1/SessionService/Sessions/1"]
    assert bmc.sessions == {}


def test_basic_auth_when_the_service_has_no_sessions() -> None:
    bmc = FakeBMC(sessions=False)
    bmc.add("/redfish/v1/Systems", {"Members": []})

    async def go() -> str:
        async with client(bmc) as c:
            await c.get("/redfish/v1/Systems")
            return c.auth_mode

    assert run(go()) == "basic"
    assert bmc.requests("GET", "/redfish/v1/Systems")[0].headers["authorization"].startswith("Basic ")


def test_wrong_password_is_an_auth_failure_and_never_logged(
    clusterctl_logs: pytest.LogCaptureFixture,
) -> None:
    bmc = FakeBMC()
    with pytest.raises(BMCAuthFailed) as err:
        run(client(bmc, password="wrong-password-123").__aenter__())
    assert "bmc1" in str(err.value)
    assert "wrong-password-123" not in str(err.value)
    assert "wrong-password-123" not in clusterctl_logs.text


def test_expired_session_is_renewed_once() -> None:
    bmc = FakeBMC()
    bmc.add("/redfish/v1/Systems", {"Members": []})

    async def go() -> None:
        async with client(bmc) as c:
            bmc.sessions.clear()  # the BMC forgot every session (timeout, BMC reset)
            await c.get("/redfish/v1/Systems")

    run(go())
    assert len(bmc.requests("POST", "/redfish/v1/SessionService/Sessions")) == 2
    gets = bmc.requests("GET", "/redfish/v1/Systems")
    assert [g.headers["x-auth-token"][:7] for g in gets] == ["token-1", "token-2"]
    # Both sessions are over, the expired one included: neither stays in the mask list (it held one
    # dead token per iDRAC reset, 12,500 at a site, each scanned for in every stored string).
    expired, renewed = (g.headers["x-auth-token"] for g in gets)
    assert log.mask_secrets(f"{expired} {renewed}") == f"{expired} {renewed}"


def test_members_follow_next_link_pages() -> None:
    bmc = FakeBMC()
    for page in range(3):
        link = {"Members@odata.nextLink": f"/redfish/v1/Things/page{page + 1}"} if page < 2 else {}
        path = "/redfish/v1/Things" if page == 0 else f"/redfish/v1/Things/page{page}"
        bmc.add(path, {"Members": [{"@odata.id": f"/redfish/v1/Things/{page}-{i}"} for i in range(2)], **link})
        for i in range(2):
            bmc.add(f"/redfish/v1/Things/{page}-{i}", {"Id": f"{page}-{i}"})

    async def go() -> list[str]:
        async with client(bmc) as c:
            return [m["Id"] for m in await c.members("/redfish/v1/Things")]

    assert run(go()) == ["0-0", "0-1", "1-0", "1-1", "2-0", "2-1"]


def test_members_limit_stops_paging_early() -> None:
    bmc = FakeBMC()
    bmc.add(
        "/redfish/v1/Log",
        {
            "Members": [{"Id": "a", "Message": "x"}, {"Id": "b", "Message": "y"}],
            "Members@odata.nextLink": "/redfish/v1/Log/p2",
        },
    )
    bmc.add("/redfish/v1/Log/p2", {"Members": [{"Id": "c", "Message": "z"}]})

    async def go() -> list[str]:
        async with client(bmc) as c:
            return [m["Id"] for m in await c.members("/redfish/v1/Log", limit=2)]

    assert run(go()) == ["a", "b"]
    assert bmc.requests("GET", "/redfish/v1/Log/p2") == []


def test_patch_sends_if_match_and_a_stale_etag_is_refused() -> None:
    bmc = FakeBMC()
    bmc.add("/redfish/v1/Systems/1", {"Boot": {"BootSourceOverrideTarget": "None"}}, etag='W/"7"')

    async def go() -> None:
        async with client(bmc) as c:
            await c.patch_fresh("/redfish/v1/Systems/1", {"Boot": {"BootSourceOverrideTarget": "Pxe"}})
            with pytest.raises(BMCRequestFailed) as err:
                await c.patch("/redfish/v1/Systems/1", {"Boot": {"BootSourceOverrideTarget": "Hdd"}}, etag='W/"7"')
            assert err.value.status == 412
            assert "PreconditionFailed" in str(err.value)

    run(go())
    patches = bmc.requests("PATCH", "/redfish/v1/Systems/1")
    assert patches[0].headers["if-match"] == 'W/"7"'
    assert bmc.resources["/redfish/v1/Systems/1"]["Boot"]["BootSourceOverrideTarget"] == "Pxe"


def test_extended_info_becomes_a_readable_error() -> None:
    bmc = FakeBMC()
    bmc.on(
        "PATCH",
        "/redfish/v1/Systems/System.Embedded.1/Bios/Settings",
        lambda req: Resp(400, fixture("idrac9/error_extended_info.json")),
    )

    async def go() -> None:
        async with client(bmc) as c:
            await c.patch(
                "/redfish/v1/Systems/System.Embedded.1/Bios/Settings",
                {"Attributes": {"ProcTurboMode": "Turbo"}},
            )

    with pytest.raises(RedfishRequestFailed) as err:
        run(go())
    text = str(err.value)
    assert text.startswith("bmc1: PATCH /redfish/v1/Systems/System.Embedded.1/Bios/Settings -> 400")
    assert "Base.1.12.PropertyValueNotInList: The value 'Turbo'" in text
    assert "IDRAC.2.9.SYS426" in text
    assert err.value.message_ids == ["Base.1.12.PropertyValueNotInList", "IDRAC.2.9.SYS426"]
    assert err.value.status == 400


def test_retry_after_is_honoured_over_our_own_backoff() -> None:
    bmc = FakeBMC()
    calls: list[float] = []

    def busy_then_ok(req: Req) -> Resp:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return Resp(503, error_body("Base.1.8.ServiceTemporarilyUnavailable", "busy"), {"Retry-After": "1"})
        return Resp(200, {"Id": "ok"})

    bmc.on("GET", "/redfish/v1/Busy", busy_then_ok)
    # Our own backoff would wait >= 5 s; the BMC says 1 s, and 1 s it is.
    slow_own_backoff = RetryPolicy(attempts=5, initial_wait=5.0, max_wait=30.0, jitter=0.0, max_total=60)

    async def go() -> dict:
        async with client(bmc, retry=slow_own_backoff) as c:
            return await c.get("/redfish/v1/Busy")

    assert run(go()) == {"Id": "ok"}
    assert len(calls) == 3
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert all(0.9 <= g < 3.0 for g in gaps), gaps


def test_503_that_never_clears_ends_as_request_failed_after_the_attempts() -> None:
    bmc = FakeBMC()
    bmc.on(
        "GET",
        "/redfish/v1/Busy",
        lambda req: Resp(503, error_body("Base.1.8.ServiceTemporarilyUnavailable", "busy")),
    )

    async def go() -> None:
        async with client(bmc) as c:
            await c.get("/redfish/v1/Busy")

    with pytest.raises(BMCRequestFailed) as err:
        run(go())
    assert err.value.status == 503
    assert len(bmc.requests("GET", "/redfish/v1/Busy")) == FAST.attempts


def test_post_is_not_retried_after_a_server_error_that_may_have_applied_it() -> None:
    bmc = FakeBMC()
    bmc.on("POST", "/redfish/v1/Act", lambda req: Resp(502, error_body("Gateway", "bad gateway")))

    async def go() -> None:
        async with client(bmc) as c:
            await c.post("/redfish/v1/Act", {})

    with pytest.raises(BMCRequestFailed):
        run(go())
    assert len(bmc.requests("POST", "/redfish/v1/Act")) == 1


def test_session_is_deleted_when_the_caller_is_cancelled() -> None:
    bmc = FakeBMC()
    started = asyncio.Event()

    async def hang(req: Req) -> Resp:
        started.set()
        await asyncio.sleep(30)
        return Resp(200, {})

    bmc.on("GET", "/redfish/v1/Slow", hang)

    async def go() -> None:
        async def work() -> None:
            async with client(bmc) as c:
                await c.get("/redfish/v1/Slow")

        task = asyncio.create_task(work())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    run(go())
    assert time.monotonic() - t0 < 10
    assert bmc.deleted_sessions == ["/redfish/v1/SessionService/Sessions/1"]
    assert bmc.sessions == {}


def test_session_is_deleted_when_a_timeout_interrupts_the_work() -> None:
    bmc = FakeBMC()

    async def hang(req: Req) -> Resp:
        await asyncio.sleep(30)
        return Resp(200, {})

    bmc.on("GET", "/redfish/v1/Slow", hang)

    async def go() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                async with client(bmc) as c:
                    await c.get("/redfish/v1/Slow")

    run(go())
    assert bmc.deleted_sessions == ["/redfish/v1/SessionService/Sessions/1"]


def test_per_bmc_limit_bounds_concurrent_requests() -> None:
    bmc = FakeBMC()
    in_flight = {"now": 0, "max": 0}

    async def slow(req: Req) -> Resp:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.05)
        in_flight["now"] -= 1
        return Resp(200, {"Id": req.path})

    for i in range(12):
        bmc.on("GET", f"/redfish/v1/Things/{i}", slow)

    async def go() -> None:
        async with client(bmc, limits=Limits(per_bmc=2)) as c:
            await asyncio.gather(*(c.get(f"/redfish/v1/Things/{i}") for i in range(12)))

    run(go())
    assert in_flight["max"] == 2


def test_session_limit_is_reported_with_the_bmc_message_not_as_bad_credentials() -> None:
    bmc = FakeBMC()
    bmc.on(
        "POST",
        "/redfish/v1/SessionService/Sessions",
        lambda req: Resp(
            400,
            error_body(
                "Base.1.8.SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding the limit.",
            ),
        ),
    )
    with pytest.raises(BMCRequestFailed, match="SessionLimitExceeded") as err:
        run(client(bmc).__aenter__())
    assert not isinstance(err.value, BMCAuthFailed)


def test_retry_after_header_forms() -> None:
    from datetime import datetime, timedelta
    from email.utils import format_datetime

    from clusterctl.redfish.retry import parse_retry_after

    assert parse_retry_after("20") == 20.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
