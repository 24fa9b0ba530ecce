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
) -> list[TargetResult[T]]:
    """`op(client)` on every target, at most `max_bmcs` BMCs at once; results in `targets` order."""
    limits = limits or Limits()
    gate = asyncio.Semaphore(max_bmcs)

    async def one(target: BMCTarget) -> TargetResult[T]:
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
            if on_done is not None:
                on_done(result)
            return result

    return list(await asyncio.gather(*(one(t) for t in targets)))


def _message(exc: ClusterctlError, target: BMCTarget) -> str:
    text = str(exc)
    prefix = f"{target.name}: "
    if isinstance(exc, BMCError) and text.startswith(prefix):
        text = text[len(prefix) :]
    return text
