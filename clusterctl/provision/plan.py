"""`--dry-run`: what provisioning would change on which node (the observed diff), and the reboot waves.

Nothing is written to the BMCs or the store: every stage's `plan` only observes. Waves are
counted per rack from the same rule the power gate enforces: how many of the rack's nodes that
need a reboot fit at once under max_rebooting and the power budget (measured draw as baseline).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clusterctl.errors import ClusterctlError
from clusterctl.provision.context import NodeContext
from clusterctl.provision.engine import Options, reason_of
from clusterctl.provision.images import ImageCheck
from clusterctl.provision.power import PowerGate, RackPower
from clusterctl.provision.stages import STAGES

if TYPE_CHECKING:
    import httpx

    from clusterctl.inventory import Inventory, Node
    from clusterctl.redfish import BMCTarget

REBOOTING_STAGES = ("firmware", "bios", "boot")


class _NoJournal:
    """Planning records nothing; the context's rare journal calls go here."""

    async def event(self, *args: Any, **kwargs: Any) -> int:
        return 0


async def plan(
    inventory: Inventory,
    nodes: list[Node],
    options: Options,
    *,
    transport_for: Callable[[BMCTarget], httpx.AsyncBaseTransport | None] | None = None,
) -> dict[str, Any]:
    from clusterctl.redfish import Limits, RetryPolicy
    from clusterctl.redfish.target import targets_for

    targets = targets_for(inventory, nodes)
    gate = PowerGate(inventory)
    limits = Limits(per_bmc=options.per_bmc_requests, global_requests=options.global_requests)
    retry = RetryPolicy(max_total=max(options.tuning.request_timeout_s * 2, 1.0))
    images = ImageCheck(inventory)
    slots = asyncio.Semaphore(max(1, options.concurrency))

    async def one(node: Node) -> dict[str, Any]:
        target = targets[node.name]
        ctx = NodeContext(node=node, target=target, inventory=inventory, journal=_NoJournal(),  # type: ignore[arg-type]
                          gate=gate, tuning=options.tuning, limits=limits, retry=retry,
                          images=images, transport=transport_for(target) if transport_for else None)
        found: dict[str, Any] = {}
        async with slots:
            try:
                for stage in options.stages:
                    try:
                        found[stage] = await STAGES[stage].plan(ctx)
                    except ClusterctlError as exc:
                        found[stage] = {"error": reason_of(exc, ctx)}
                        if stage == "discover":
                            break
                    if stage == "discover" and "facts" in found[stage]:
                        gate.measured(node, found[stage]["facts"].get("watts"))
            finally:
                await ctx.close()
        return found

    results = await asyncio.gather(*(one(n) for n in nodes))
    per_node = {n.name: r for n, r in zip(nodes, results, strict=True)}
    return {"nodes": per_node, "waves": waves(gate, per_node, inventory)}


def _needs_reboot(stages: dict[str, Any]) -> bool:
    for stage in REBOOTING_STAGES:
        change = stages.get(stage, {}).get("change") or {}
        if stage == "firmware":
            change = {c: v for c, v in change.items() if c.lower() not in ("idrac", "bmc")}
        if change:
            return True
    return False


def _fit(rack: RackPower) -> int:
    """How many of the rack's nodes may reboot at once (greedy: the cheapest reboots first)."""
    order = sorted(rack.max_w, key=lambda n: float(rack.max_w[n] or 0) - rack.steady_w(n))
    chosen: set[str] = set()
    for node in order:
        if len(chosen) >= rack.max_rebooting:
            break
        if rack.budget_w is not None and rack.estimate_w(chosen | {node}) > rack.budget_w:
            break
        chosen.add(node)
    return len(chosen)


def waves(gate: PowerGate, per_node: dict[str, dict[str, Any]], inventory: Inventory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rack in gate.racks.items():
        rebooting = [n for n in rack.max_w if n in per_node and _needs_reboot(per_node[n])]
        if not rebooting:
            continue
        at_once = _fit(rack)
        out[name] = {
            "nodes_to_reboot": len(rebooting),
            "at_once": at_once,
            "waves": math.ceil(len(rebooting) / at_once) if at_once else None,
            "max_rebooting": rack.max_rebooting,
            "power_budget_w": rack.budget_w,
        }
    return out
