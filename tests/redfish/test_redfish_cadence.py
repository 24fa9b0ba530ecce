"""Learned polling: later waits of a kind find the end sooner than a fixed interval does, with fewer
looks, and the waits really feed what they saw back."""

from __future__ import annotations

import asyncio

import httpx
from support.fakebmc import FakeBMC, Resp, fixture

from clusterctl.redfish import BMCTarget, RedfishClient, RetryPolicy
from clusterctl.redfish.cadence import FINE, Cadence, Durations, Every
from clusterctl.redfish.resources.tasks import wait_task


def simulate(cadence: Cadence, duration: float, *, look_cost: float = 0.0) -> tuple[float, int]:
    """A wait on an operation that ends `duration` s in, on a simulated clock: (when seen done, looks)."""
    now, looks = 0.0, 0
    while True:
        looks += 1
        looked = now
        now += look_cost
        if looked >= duration:
            cadence.finished(now)
            return now, looks
        now += cadence.delay(looked)


def test_later_waits_find_the_end_within_a_fine_step() -> None:
    interval, duration = 20.0, 151.0
    durations = Durations(interval)
    first_seen, first_looks = simulate(durations.cadence("post"), duration)
    assert first_seen - duration > interval / FINE  # 160: a fixed interval's lag
    for _ in range(5):
        seen, looks = simulate(durations.cadence("post"), duration)
    assert seen - duration <= interval / FINE
    assert looks < first_looks


def test_the_fixed_interval_never_learns() -> None:
    lags = [simulate(Every(20.0), 151.0)[0] - 151.0 for _ in range(3)]
    assert lags == [9.0, 9.0, 9.0]


def test_spread_of_durations_is_polled_finely_then_the_interval_resumes() -> None:
    durations = Durations(10.0)
    durations.record("job", 90.0, 100.0)  # seen running at 90, done at 100
    durations.record("job", 120.0, 130.0)
    cadence = durations.cadence("job")
    assert cadence.delay(0.0) == 40.0  # far from the earliest end (90): half the way, at most 4 intervals
    assert cadence.delay(60.0) == 15.0
    assert cadence.delay(85.0) == 5.0  # lands on the earliest end seen
    assert cadence.delay(115.0) == 10.0 / FINE
    assert cadence.delay(400.0) == 10.0  # slower than anything seen: back to the plain interval


def test_one_slow_outlier_does_not_make_later_waits_poll_finely_for_long() -> None:
    durations = Durations(10.0)
    durations.record("job", 240.0, 250.0)
    durations.record("job", 1190.0, 1200.0)  # one job that hung for twenty minutes
    cadence = durations.cadence("job")
    assert cadence.delay(260.0) == 10.0 / FINE
    assert cadence.delay(290.0) == 10.0  # past four intervals after the earliest end


def test_done_at_the_first_look_teaches_nothing() -> None:
    durations = Durations(10.0)
    simulate(durations.cadence("job"), 0.0)
    assert durations.ended == {}


def test_kinds_learn_apart() -> None:
    durations = Durations(10.0)
    durations.record(("XE9680", "reboot"), 140.0, 150.0)
    assert durations.cadence(("XE9680", "reboot")).delay(145.0) == 10.0 / FINE
    assert durations.cadence(("R760", "reboot")).delay(145.0) == 10.0


def test_with_nothing_learned_polls_start_fine_and_grow_to_the_interval() -> None:
    cadence = Durations(16.0).cadence("staging")
    delays = [cadence.delay(t) for t in (0.0, 2.0, 4.0, 8.0, 20.0, 300.0)]
    assert delays == [2.0, 2.0, 2.0, 4.0, 10.0, 16.0]
    seen, looks = simulate(Durations(16.0).cadence("staging"), 5.0)
    assert seen == 6.0 and looks == 4  # a short operation is not waited on for a whole interval


def test_wait_task_reports_the_window_the_task_ended_in() -> None:
    bmc = FakeBMC()
    looks = [0]

    def monitor(req: object) -> Resp:
        looks[0] += 1
        body = fixture("idrac9/task.json")
        body.update(TaskState="Completed" if looks[0] >= 3 else "Running", TaskStatus="OK")
        return Resp(200 if looks[0] >= 3 else 202, body)

    bmc.on("GET", "/redfish/v1/TaskMonitors/1", monitor)
    durations = Durations(0.01)

    async def go() -> None:
        target = BMCTarget(name="bmc1", base_url="http://bmc1.test", username="admin", password="s3cret-pw")
        retry = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.1, jitter=0.0, max_total=2)
        async with RedfishClient(target, transport=httpx.ASGITransport(app=bmc), retry=retry) as client:
            await wait_task(client, "/redfish/v1/TaskMonitors/1", deadline_s=10, poll=durations.cadence("t"))

    asyncio.run(go())
    assert looks[0] == 3
    [(running, done)] = durations.ended["t"]
    assert 0 < running < done
