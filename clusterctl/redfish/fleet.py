"""Run one operation against many BMCs: every BMC gets a result or an error, none stops the rest.

Failures are data, not exceptions: a dead BMC only holds its own slot while its
retries run out, so it cannot slow the others beyond the global limit it shares with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx

from clusterctl import log
from clusterctl.errors import BMCError, ClusterctlError
from clusterctl.fanout import TargetResult, recording
from clusterctl.redfish.client import RedfishClient
from clusterctl.redfish.limits import DEFAULT_GLOBAL, Limits
from clusterctl.redfish.retry import RetryPolicy
from clusterctl.redfish.target import BMCTarget

T = TypeVar("T")
_log = log.get("redfish.fleet")


async def run_fleet(
    targets: Sequence[BMCTarget],
    op: Callable[[RedfishClient], Awaitable[T]],
    *,
    limits: Limits | None = None,
    max_bmcs: int = DEFAULT_GLOBAL,
    per_bmc_timeout: float | None = 600.0,
    retry: RetryPolicy | None = None,
    timeout: httpx.Timeout | float | None = None,
    transport_for: Callable[[BMCTarget], httpx.AsyncBaseTransport | None] | None = None,
    on_done: Callable[[TargetResult[T]], None] | None = None,
    processes: int = 1,
) -> list[TargetResult[T]]:
    """`op(client)` on every target, at most `max_bmcs` BMCs at once; results in `targets` order.

    `processes` > 1 spreads the targets over that many processes, this one included
    (`clusterctl.redfish.processes`; `auto_processes` says how many pay): `op` must then be a
    module-level function, its values must pickle, and the limits apply per process, each taking
    its part of `max_bmcs` and of the global request limit.
    """
    results: list[TargetResult[T] | None] = [None] * len(targets)

    def landed(i: int, result: TargetResult[T]) -> None:
        results[i] = result
        if on_done is not None:
            on_done(result)

    processes = min(processes, len(targets))
    if processes <= 1:
        await _sweep(targets, op, on_done=landed, limits=limits, max_bmcs=max_bmcs, per_bmc_timeout=per_bmc_timeout,
                     retry=retry, timeout=timeout, transport_for=transport_for)
    else:
        if transport_for is not None:
            raise ValueError("transport_for works in one process only: leave processes at 1 with it")
        from clusterctl.redfish.processes import run_in_processes, split_limit

        given = limits or Limits()
        options = {"per_bmc": given.per_bmc, "global_requests": split_limit(given.global_requests, processes),
                   "max_bmcs": split_limit(max_bmcs, processes), "per_bmc_timeout": per_bmc_timeout,
                   "retry": retry, "timeout": timeout}
        await run_in_processes(targets, op, processes, _sweep_with_own_limits, options, landed)
    assert all(r is not None for r in results), "every target gets a result"
    return results  # type: ignore[return-value]


async def _sweep_with_own_limits(targets: Sequence[BMCTarget], op: Callable[[RedfishClient], Awaitable[T]], *,
                                 per_bmc: int, global_requests: int, **options: Any) -> None:
    """One process's share: its own Limits, since asyncio's semaphores cannot cross processes."""
    await _sweep(targets, op, limits=Limits(per_bmc, global_requests), **options)


async def _sweep(
    targets: Sequence[BMCTarget],
    op: Callable[[RedfishClient], Awaitable[T]],
    *,
    on_done: Callable[[int, TargetResult[T]], None],
    limits: Limits | None,
    max_bmcs: int,
    per_bmc_timeout: float | None,
    retry: RetryPolicy | None,
    timeout: httpx.Timeout | float | None,
    transport_for: Callable[[BMCTarget], httpx.AsyncBaseTransport | None] | None = None,
) -> None:
    """`op` on each target in this process; `on_done(index, result)` as each lands."""
    limits = limits or Limits()
    gate = asyncio.Semaphore(max_bmcs)

    async def one(i: int, target: BMCTarget) -> None:
        async with gate:
            result: TargetResult[T] = TargetResult(target.name)
            kwargs: dict[str, Any] = {"limits": limits, "retry": retry}
            if timeout is not None:
                kwargs["timeout"] = timeout
            if transport_for is not None:
                kwargs["transport"] = transport_for(target)
            with recording(result, _log, lambda exc: _message(exc, target)):
                try:
                    async with asyncio.timeout(per_bmc_timeout):
                        async with RedfishClient(target, **kwargs) as client:
                            result.value = await op(client)
                except TimeoutError:
                    result.error, result.error_type = f"no result within {per_bmc_timeout:.0f} s", "Timeout"
            on_done(i, result)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))


def _message(exc: ClusterctlError, target: BMCTarget) -> str:
    text = str(exc)
    prefix = f"{target.name}: "
    if isinstance(exc, BMCError) and text.startswith(prefix):
        text = text[len(prefix) :]
    return text
