"""Gather each node's Redfish telemetry for the power and cooling checks, through `run_fleet`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from clusterctl import eventloop

if TYPE_CHECKING:
    import httpx

    from clusterctl.redfish import BMCTarget, RedfishClient
    from clusterctl.redfish.resources.telemetry import Telemetry


async def _node_telemetry(client: RedfishClient) -> Telemetry:
    from clusterctl.redfish.resources.telemetry import node_telemetry
    from clusterctl.validate.power import merge_telemetry

    return merge_telemetry(await node_telemetry(client))


def gather_telemetry(
    targets: Sequence[BMCTarget],
    *,
    max_bmcs: int = 64,
    per_bmc_timeout: float = 120.0,
    transport_for: Callable[[BMCTarget], httpx.AsyncBaseTransport | None] | None = None,
    on_done: Callable[[Any], None] | None = None,
) -> dict[str, tuple[Telemetry | None, str | None]]:
    """Per node name: (telemetry, None) or (None, the BMC's error)."""
    from clusterctl.redfish import run_fleet

    results = eventloop.run(run_fleet(targets, _node_telemetry, max_bmcs=max_bmcs, per_bmc_timeout=per_bmc_timeout,
                                    transport_for=transport_for, on_done=on_done))
    return {r.target: (r.value, r.error) for r in results}
