"""`clusterctl plan`: the drift between the inventory and what the nodes report; nothing is changed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl import eventloop
from clusterctl.cli.context import settings

if TYPE_CHECKING:
    from rich.console import Console

HELP = (
    "What differs between the inventory and the nodes: firmware per component (the BMC's FirmwareInventory), "
    "BIOS attributes (the BMC), software versions (the validation agent over SSH). Per node and summarised "
    "(\"412 nodes: HGX-H100 24.03.1 → 24.07.0\"). Reads only. `clusterctl maintain` rolls the same drift out. "
    "Exit 0 when nothing drifted, 1 when something did or a node could not be read."
)


def register(app: typer.Typer) -> None:
    app.command("plan", help=HELP, epilog="Example: clusterctl plan site.yaml --limit a01-r01 -o json")(plan)


def plan(
    ctx: typer.Context,
    inventory: Path = typer.Argument(..., help="Inventory file.", show_default=False),
    limit: str = typer.Option(None, "--limit", "-l", help="Nodes, racks or groups (hostlist patterns)."),
    software: bool = typer.Option(True, "--software/--no-software",
                                  help="Read software versions from the nodes over SSH."),
) -> None:
    from clusterctl.inventory import load_inventory
    from clusterctl.maintain.drift import observe, summarize

    cfg = settings(ctx)
    inv = load_inventory(inventory)
    nodes = inv.select(limit)
    drifts = eventloop.run(observe(inv, nodes, software=software))
    data = {
        "nodes": len(nodes),
        "drifted": sum(d.drifted for d in drifts),
        "unreadable": sorted(d.node for d in drifts if d.errors),
        "summary": summarize(drifts),
        "per_node": [d.as_dict() for d in drifts],
    }
    cfg.emit(data, lambda console: _draw(console, data))
    if data["drifted"] or data["unreadable"]:
        raise typer.Exit(1)


def _draw(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from clusterctl.maintain.drift import summary_lines

    unread = f"; {len(data['unreadable'])} not fully read (below)" if data["unreadable"] else ""
    console.print(f"{data['drifted']} of {data['nodes']} node(s) differ from the inventory{unread}",
                  markup=False, highlight=False)
    for line in summary_lines(data["summary"]):
        console.print("  " + line, markup=False, highlight=False)
    rows = [d for d in data["per_node"] if d["drifted"] or d["errors"]]
    if not rows:
        return
    table = Table(show_edge=False, title="per node", title_justify="left")
    for column in ("node", "kind", "change"):
        table.add_column(column)
    for d in rows:
        for kind, items in d["changes"].items():
            text = ", ".join(f"{item} {_v(c['from'])} → {_v(c['to'])}" for item, c in items.items())
            table.add_row(Text(d["node"]), Text(kind), Text(text))
        for kind, error in d["errors"].items():
            table.add_row(Text(d["node"]), Text(kind), Text(f"not read: {error}"))
    console.print(table)


def _v(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
