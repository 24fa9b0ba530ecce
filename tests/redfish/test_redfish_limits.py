"""The global request slots: served by rank, and a cancelled waiter neither keeps nor loses a slot."""

from __future__ import annotations

import asyncio

from clusterctl.redfish.limits import Limits, RankedSlots


def test_waiters_are_served_lowest_rank_first_then_in_arrival_order() -> None:
    async def go() -> list[str]:
        slots, served = RankedSlots(1), []
        await slots.acquire()  # held: everyone below waits

        async def waiter(name: str, rank: int) -> None:
            await slots.acquire(rank)
            served.append(name)
            slots.release()

        tasks = []
        for name, rank in [("late-a", 5), ("early", 1), ("late-b", 5), ("first", 0)]:
            tasks.append(asyncio.create_task(waiter(name, rank)))
            await asyncio.sleep(0)  # arrive in this order
        slots.release()
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(go()) == ["first", "early", "late-a", "late-b"]


def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    async def go() -> tuple[bool, bool]:
        slots = RankedSlots(1)
        await slots.acquire()
        gone = asyncio.create_task(slots.acquire(0))
        await asyncio.sleep(0)
        gone.cancel()  # cancelled while waiting: skipped when the slot is released
        other = asyncio.create_task(slots.acquire(1))
        await asyncio.sleep(0)
        slots.release()
        await asyncio.wait_for(other, 1)
        granted_then_cancelled = asyncio.create_task(slots.acquire(0))
        await asyncio.sleep(0)
        slots.release()  # granted to it ...
        granted_then_cancelled.cancel()  # ... and cancelled before it ran: the slot must not be lost
        await asyncio.gather(granted_then_cancelled, return_exceptions=True)
        await asyncio.wait_for(slots.acquire(0), 1)  # would hang if the slot had been lost
        return gone.cancelled(), granted_then_cancelled.cancelled()

    assert asyncio.run(go()) == (True, True)


def test_ranked_bmcs_get_the_global_slots_before_later_ones() -> None:
    async def go() -> list[str]:
        limits, served = Limits(per_bmc=4, global_requests=1), []
        limits.rank(["n1", "n2", "n3"])
        hold = limits.slot("n3")
        await hold.__aenter__()

        async def request(bmc: str) -> None:
            async with limits.slot(bmc):
                served.append(bmc)

        tasks = []
        for bmc in ["unranked", "n3", "n2", "n1"]:
            tasks.append(asyncio.create_task(request(bmc)))
            await asyncio.sleep(0)
        await hold.__aexit__(None, None, None)
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(go()) == ["n1", "n2", "n3", "unranked"]
