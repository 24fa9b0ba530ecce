"""What differs between the inventory and what each node reports, without changing anything.

Firmware and BIOS come from the provision stages' own `plan` (the BMC's FirmwareInventory and
Bios resource, compared by the same rules the stages act on), so `plan` shows exactly what
`maintain` would change. Software versions come from the validation agent over SSH, compared
as `validate` compares them (clusterctl.validate.software.version_matches).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from clusterctl.inventory import Inventory, Node
    from clusterctl.redfish import BMCTarget

KINDS = ("firmware", "bios", "software")
STAGE_FOR = {"firmware": "firmware", "bios": "bios", "software": "os"}
"""The provision stage that removes each kind of drift."""


@dataclass
class NodeDrift:
    node: str
    changes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """kind -> item -> {"from": observed, "to": wanted}"""
    errors: dict[str, str] = field(default_factory=dict)
    """kind -> why it could not be observed"""

    @property
    def drifted(self) -> bool:
        return any(self.changes.values())

    @property
    def stages(self) -> list[str]:
        """The provision stages that would remove this node's drift, in pipeline order."""
        return [STAGE_FOR[k] for k in KINDS if self.changes.get(k)]

    def describe(self) -> str:
        """One line for a drain reason or a table: "HGX-H100 23.10.2 -> 24.03.1, driver ..."."""
        return ", ".join(f"{item} {_text(c['from'])} -> {_text(c['to'])}"
                         for kind in KINDS for item, c in self.changes.get(kind, {}).items()) or "no drift"

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "drifted": self.drifted, "changes": self.changes, "errors": self.errors}


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def summarize(drifts: Sequence[NodeDrift]) -> list[dict[str, Any]]:
    """Nodes grouped by the same change: [{"kind", "item", "from", "to", "nodes"}], biggest group first."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for d in drifts:
        for kind in KINDS:
            for item, change in d.changes.get(kind, {}).items():
                groups.setdefault((kind, item, _text(change["from"]), _text(change["to"])), []).append(d.node)
    rows = [{"kind": k, "item": i, "from": f, "to": t, "count": len(n), "nodes": n}
            for (k, i, f, t), n in groups.items()]
    return sorted(rows, key=lambda r: (-r["count"], r["kind"], r["item"]))


def summary_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{r['count']} node{'s' if r['count'] != 1 else ''}: {r['item']} {r['from']} → {r['to']}" for r in rows]


async def observe(
    inventory: Inventory,
    nodes: list[Node],
    *,
    software: bool = True,
    transport_for: Callable[[BMCTarget], httpx.AsyncBaseTransport | None] | None = None,
    concurrency: int = 64,
) -> list[NodeDrift]:
    """Every node's drift; a node that cannot be read has the reason under `errors`, the rest go on."""
    from clusterctl.provision.engine import Options
    from clusterctl.provision.plan import plan

    options = Options(stages=["firmware", "bios"], concurrency=concurrency)
    bmc_side = asyncio.create_task(plan(inventory, nodes, options, transport_for=transport_for))
    versions = await asyncio.to_thread(_software, inventory, nodes, concurrency) if software else {}
    found = (await bmc_side)["nodes"]
    out = []
    for node in nodes:
        drift = NodeDrift(node.name)
        for kind in ("firmware", "bios"):
            result = found.get(node.name, {}).get(kind, {})
            if "error" in result:
                drift.errors[kind] = result["error"]
            change = result.get("change") or {}
            if change:
                drift.changes[kind] = change
        if software:
            observed, error = versions.get(node.name, ({}, "not contacted"))
            if error:
                drift.errors["software"] = error
            change = _software_change(node, observed)
            if change:
                drift.changes["software"] = change
        out.append(drift)
    return out


async def observe_stream(
    inventory: Inventory,
    nodes: list[Node],
    *,
    group: int = 16,
    concurrency: int = 64,
) -> AsyncIterator[list[NodeDrift]]:
    """The same drifts, a small group of nodes at a time as each group is read, groups taken in `nodes` order.

    A rollout starts a node as soon as its own drift is known instead of after the whole fleet's read
    (1,000-2,000 nodes take a minute or more), and the read goes on beside the first nodes' updates.
    At most `concurrency` nodes are read at once, as in `observe`."""
    size = max(1, group)
    window = asyncio.Semaphore(max(1, concurrency // size))  # FIFO: groups start in order

    async def read(part: list[Node]) -> list[NodeDrift]:
        async with window:
            return await observe(inventory, part, concurrency=size)

    tasks = [asyncio.ensure_future(read(nodes[i:i + size])) for i in range(0, len(nodes), size)]
    try:
        for finished in asyncio.as_completed(tasks):
            yield await finished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _software_change(node: Node, observed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from clusterctl.validate.expect import SOFTWARE
    from clusterctl.validate.software import version_matches

    change = {}
    for component in SOFTWARE:
        wanted = getattr(node.software, component, None)
        actual = observed.get(component)
        if wanted and actual is not None and not version_matches(str(actual), wanted):
            change[component] = {"from": str(actual), "to": wanted}
    return change


def _software(inventory: Inventory, nodes: list[Node], parallel: int) -> dict[str, tuple[dict[str, Any], str | None]]:
    """{node: (software versions the agent reports, error)} over SSH, as `validate` reaches nodes."""
    from clusterctl.errors import ClusterctlError
    from clusterctl.ssh import SSHPool, target_from_node
    from clusterctl.validate.run import AgentCall, collect_reports

    targets: list[Any] = []
    out: dict[str, tuple[dict[str, Any], str | None]] = {}
    for node in nodes:
        try:
            targets.append(target_from_node(node, inventory))
        except ClusterctlError as exc:
            out[node.name] = ({}, str(exc))
    pool = SSHPool(max_sessions=parallel, connect_timeout=10.0, command_timeout=120.0)
    # The versions alone: a drift read is on every node of the fleet, and the GPUs' facts are validate's.
    call = AgentCall(args=("--software-only",))
    for name, outcome in collect_reports(targets, pool, agent_call=lambda _: call, max_parallel=parallel).items():
        if not outcome.ok:
            out[name] = ({}, outcome.error or outcome.error_type or "SSH failed")
            continue
        report = outcome.value.get("software") if isinstance(outcome.value, dict) else None
        if not isinstance(report, dict) or report.get("error"):
            out[name] = ({}, f"the agent could not read software versions: {(report or {}).get('error')}")
        else:
            out[name] = (report, None)
    return out
