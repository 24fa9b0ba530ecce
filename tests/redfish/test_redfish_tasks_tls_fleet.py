"""Task monitors (incl. a BMC outage mid-task), TLS verification, and fleet isolation, against
real servers on 127.0.0.1 where the behaviour depends on sockets."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from support.asgi import served
from support.fakebmc import FakeBMC, Req, Resp, fixture

from clusterctl.errors import BMCRequestFailed, BMCUnreachable, TaskFailed
from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy, run_fleet
from clusterctl.redfish.resources.tasks import start_and_wait, wait_task

FAST = RetryPolicy(attempts=2, initial_wait=0.05, max_wait=1.0, jitter=0.0, max_total=5)


def tgt(url: str, name: str = "bmc1", verify: bool | str = True) -> BMCTarget:
    return BMCTarget(name=name, base_url=url, username="admin", password="s3cret-pw", verify=verify)


def task_body(state: str, status: str = "OK", percent: int = 0) -> dict:
    body = fixture("idrac9/task.json")
    body.update(TaskState=state, TaskStatus=status, PercentComplete=percent)
    return body


def scripted_task(bmc: FakeBMC, states: list[tuple[int, dict]]) -> list[Req]:
    """POST /Act answers 202 + Location; each GET of the monitor returns the next scripted answer."""
    polls: list[Req] = []
    bmc.on("POST", "/redfish/v1/Act", lambda req: Resp(202, None, {"Location": "/redfish/v1/TaskMonitors/1"}))

    def poll(req: Req) -> Resp:
        polls.append(req)
        status, body = states[min(len(polls), len(states)) - 1]
        return Resp(status, body, {"Retry-After": "0"} if status == 202 else {})

    bmc.on("GET", "/redfish/v1/TaskMonitors/1", poll)
    return polls


def test_task_monitor_polls_until_completed() -> None:
    bmc = FakeBMC()
    polls = scripted_task(
        bmc,
        [
            (202, task_body("Running", percent=10)),
            (202, task_body("Running", percent=60)),
            (200, task_body("Completed", percent=100)),
        ],
    )

    async def go() -> dict:
        async with RedfishClient(tgt("http://bmc1.test"), transport=httpx.ASGITransport(app=bmc), retry=FAST) as c:
            return await start_and_wait(c, await c.post("/redfish/v1/Act", {}), deadline_s=10, poll=0.01)

    assert run(go())["TaskState"] == "Completed"
    assert len(polls) == 3


def test_a_link_to_another_host_is_refused_so_credentials_stay_on_the_bmc() -> None:
    bmc = FakeBMC()
    seen: list[Req] = []  # the in-process transport delivers any URL's request here, token and all
    bmc.on("GET", "/steal", lambda req: seen.append(req) or Resp(200, {}))

    async def go(url: str) -> None:
        async with RedfishClient(tgt("http://bmc1.test"), transport=httpx.ASGITransport(app=bmc), retry=FAST) as c:
            await c.get(url)

    with pytest.raises(BMCRequestFailed, match="refusing to follow 'http://elsewhere.test/steal'"):
        run(go("http://elsewhere.test/steal"))
    assert seen == []
    run(go("http://bmc1.test/steal"))  # an absolute URL on the BMC itself is fine
    assert len(seen) == 1


def test_task_exception_is_task_failed_with_its_messages() -> None:
    bmc = FakeBMC()
    failed = task_body("Exception", "Critical")
    failed["Messages"] = [{"MessageId": "SYS051", "Message": "Unable to apply the configuration."}]
    scripted_task(bmc, [(202, task_body("Running")), (200, failed)])

    async def go() -> None:
        async with RedfishClient(tgt("http://bmc1.test"), transport=httpx.ASGITransport(app=bmc), retry=FAST) as c:
            await start_and_wait(c, await c.post("/redfish/v1/Act", {}), deadline_s=10, poll=0.01)

    with pytest.raises(TaskFailed, match="Exception/Critical: SYS051: Unable to apply"):
        run(go())


def test_task_that_never_ends_stops_at_the_deadline() -> None:
    bmc = FakeBMC()
    scripted_task(bmc, [(202, task_body("Running"))])

    async def go() -> None:
        async with RedfishClient(tgt("http://bmc1.test"), transport=httpx.ASGITransport(app=bmc), retry=FAST) as c:
            await wait_task(c, "/redfish/v1/TaskMonitors/1", deadline_s=0.5, poll=0.05)

    t0 = time.monotonic()
    with pytest.raises(TaskFailed, match="still Running after"):
        run(go())
    assert time.monotonic() - t0 < 5


def test_task_survives_the_bmc_going_away_and_coming_back(clusterctl_logs: pytest.LogCaptureFixture) -> None:
    bmc = FakeBMC()
    polls = scripted_task(bmc, [(202, task_body("Running"))])
    outage_over = threading.Event()

    with served(bmc) as server:

        def outage() -> None:
            server.stop()  # the BMC resets itself mid-task (iDRAC does during its own update)
            time.sleep(1.0)
            bmc.handlers[("GET", "/redfish/v1/TaskMonitors/1")] = lambda req: Resp(200, task_body("Completed"))
            server.start()
            outage_over.set()

        def first_poll_then_outage(req: Req) -> Resp:
            polls.append(req)
            threading.Thread(target=outage, daemon=True).start()
            return Resp(202, task_body("Running"))

        bmc.on("GET", "/redfish/v1/TaskMonitors/1", first_poll_then_outage)

        async def go() -> dict:
            async with RedfishClient(tgt(server.url), retry=FAST, timeout=2.0) as c:
                resp = await c.post("/redfish/v1/Act", {})
                return await start_and_wait(c, resp, deadline_s=20, poll=0.2)

        result = run(go())
    assert outage_over.is_set()
    assert result["TaskState"] == "Completed"
    assert "BMC unreachable or busy, still waiting" in clusterctl_logs.text


def test_tls_verified_with_site_ca_refused_without_it_and_skipped_only_when_insecure(tls: dict) -> None:
    bmc = FakeBMC()
    bmc.add("/redfish/v1/Systems", {"Members": []})

    async def fetch(target: BMCTarget) -> dict:
        async with RedfishClient(target, retry=FAST) as c:
            return await c.get("/redfish/v1/Systems")

    with served(bmc, certfile=tls["cert"], keyfile=tls["key"]) as server:
        assert run(fetch(tgt(server.url, verify=tls["ca"]))) == {"Members": []}
        with pytest.raises(BMCUnreachable, match="TLS certificate not trusted"):
            run(fetch(tgt(server.url, verify=True)))
        assert run(fetch(tgt(server.url, verify=False))) == {"Members": []}
    # the refused attempt never reached the application, and was not retried as if transient
    assert len(bmc.requests("POST", "/redfish/v1/SessionService/Sessions")) == 2


def test_missing_ca_file_is_bad_input() -> None:
    from clusterctl.redfish.target import BMCTargetError

    with pytest.raises(BMCTargetError, match="CA file"):
        tgt("https://127.0.0.1:1", verify="/nonexistent/ca.pem").ssl_context()
    with pytest.raises(BMCTargetError, match="not http"):
        tgt("ftp://x")


def test_fleet_reports_a_failing_bmc_without_slowing_the_others() -> None:
    good = FakeBMC()
    good.add("/redfish/v1/Systems", {"Members": [1, 2]})
    bad = FakeBMC()
    bad.on("GET", "/redfish/v1/Systems", lambda req: Resp(503, None, {"Retry-After": "1"}))
    targets = [tgt(f"http://bmc{i}.test", name=f"bmc{i}") for i in range(20)]
    done_at: dict[str, float] = {}

    async def op(c: RedfishClient) -> int:
        return len((await c.get("/redfish/v1/Systems"))["Members"])

    async def go() -> list:
        t0 = time.monotonic()
        return await run_fleet(
            targets,
            op,
            retry=RetryPolicy(attempts=3, initial_wait=0.1, max_wait=5, jitter=0, max_total=30),
            transport_for=lambda t: httpx.ASGITransport(app=bad if t.name == "bmc7" else good),
            on_done=lambda r: done_at.__setitem__(r.target, time.monotonic() - t0),
        )

    results = run(go())
    by_name = {r.target: r for r in results}
    assert [r.target for r in results] == [t.name for t in targets]
    assert not by_name["bmc7"].ok and by_name["bmc7"].error_type == "RedfishRequestFailed"
    assert "503" in (by_name["bmc7"].error or "")
    assert all(r.ok and r.value == 2 for n, r in by_name.items() if n != "bmc7")
    slowest_good = max(t for n, t in done_at.items() if n != "bmc7")
    assert done_at["bmc7"] >= 1.9  # two Retry-After waits
    assert slowest_good < 1.0 < done_at["bmc7"]


def test_fleet_turns_unreachable_and_timeouts_into_results() -> None:
    slow = FakeBMC()

    async def hang(req: Req) -> Resp:
        await asyncio.sleep(30)
        return Resp(200, {})

    slow.on("GET", "/redfish/v1/Systems", hang)
    dead = tgt("http://127.0.0.1:9", name="dead")  # discard port: nothing listens

    async def op(c: RedfishClient) -> dict:
        return await c.get("/redfish/v1/Systems")

    async def go() -> list:
        return await run_fleet(
            [dead, tgt("http://slow.test", name="slow")],
            op,
            retry=FAST,
            per_bmc_timeout=1.0,
            transport_for=lambda t: httpx.ASGITransport(app=slow) if t.name == "slow" else None,
        )

    t0 = time.monotonic()
    dead_r, slow_r = run(go())
    assert time.monotonic() - t0 < 8
    assert dead_r.error_type == "BMCUnreachable" and "ConnectError" in (dead_r.error or "")
    assert slow_r.error_type == "Timeout"
    assert slow.deleted_sessions == ["/redfish/v1/SessionService/Sessions/1"]


def test_request_failed_is_not_swallowed_outside_a_fleet() -> None:
    bmc = FakeBMC()

    async def go() -> None:
        async with RedfishClient(tgt("http://bmc1.test"), transport=httpx.ASGITransport(app=bmc), retry=FAST) as c:
            await c.get("/redfish/v1/Nope")

    with pytest.raises(BMCRequestFailed, match="404"):
        run(go())


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)
