"""`clusterctl lab ...`: start, inspect, fault and stop the embedded lab of simulated servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clusterctl.cli.context import settings
from clusterctl.sim.inventory import DEFAULT_NODES

app = typer.Typer(
    help="The embedded lab: simulated iDRAC9 BMCs of XE9680-class servers on loopback, with faults.",
    no_args_is_help=True,
)
fault_app = typer.Typer(help="Inject and clear faults while the lab runs.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")

FAULTS_FILE = typer.Option(None, "--faults", help="Fault file (YAML) applied at start.")
PARAM = typer.Option([], "--param", "-p", help="KEY=VALUE, repeatable.")


def _lab_dir() -> Path:
    from clusterctl.sim.labdir import default_lab_dir, ensure_lab_dir

    return ensure_lab_dir(default_lab_dir())


@app.command()
def up(
    ctx: typer.Context,
    nodes: int = typer.Option(DEFAULT_NODES, "--nodes", "-n", help="How many servers to simulate (1-20000)."),
    names: str = typer.Option(None, "--names", help="Their names as a hostlist, e.g. a site's own "
                              "'gpu[0001-2048],login[01-04]' (default gpu0001..; above 9,999 per hall, "
                              "h1-gpu0001..)."),
    faults: Path = FAULTS_FILE,
    time_scale: float = typer.Option(60.0, "--time-scale", help="Simulated seconds per real second."),
    latency_ms: float = typer.Option(50.0, "--latency-ms", help="Added latency of every BMC answer."),
    port: int = typer.Option(8443, "--port", help="BMC HTTPS port on every lab address."),
    ssh_port: int = typer.Option(2222, "--ssh-port", help="SSH port of every lab node (0: no SSH)."),
    bare: bool = typer.Option(False, "--bare", help="Servers without an OS, as racked: `provision` installs one "
                              "from the inventory's software.os_image over virtual media."),
) -> None:
    """Start the lab in the background and wait until it answers. Example: clusterctl lab up --nodes 64"""
    from clusterctl.sim import process

    cfg = settings(ctx)
    lab_dir = _lab_dir()
    cfg.note(f"lab: {nodes} servers, started unless already running ...")
    result, already = process.up(lab_dir, nodes=nodes, faults=faults, time_scale=time_scale, latency_ms=latency_ms,
                                 port=port, ssh_port=ssh_port, names=names, bare=bare)
    if already:
        cfg.note(f"lab already running (pid {result['pid']})")

    def draw(console: Any) -> None:
        console.print(
            f"lab up: {result['nodes']} servers, BMCs https://{result['bmc_first']}:{result['port']} .. "
            f"{result['bmc_last']}, pid {result['pid']}"
        )
        if result.get("ssh_error"):
            console.print(f"SSH is off: {result['ssh_error']}", markup=False)
        if result.get("ssh_first"):
            console.print(f"SSH: {result['ssh_user']}@{result['ssh_first']} .. {result['ssh_last']} port "
                          f"{result['ssh_port']}, key {result['ssh_key']}, known_hosts {result['ssh_known_hosts']}")
        console.print(f"inventory: {result['inventory']}   CA: {lab_dir / 'ca.pem'}   control: {result['control']}")

    cfg.emit(result, draw)


@app.command()
def status(ctx: typer.Context) -> None:
    """What the lab did to every server: firmware applied, BIOS changes, resets, power, boot overrides."""
    from clusterctl.sim import process

    lab_dir = _lab_dir()
    info = process.require_running(lab_dir)
    body = process.control(lab_dir, info, "GET", "/status")
    result = process.summary(lab_dir, info) | {"servers": body["servers"]}

    def draw(console: Any) -> None:
        from rich.table import Table

        ssh = (f", SSH {result['ssh_first']}..{result['ssh_last']}:{result['ssh_port']}"
               if result.get("ssh_first") else "")
        title = f"lab: {result['nodes']} servers, pid {result['pid']}, inventory {result['inventory']}{ssh}"
        table = Table(title=title)
        for column in ("node", "bmc", "power", "firmware applied", "BIOS changes", "resets", "faults"):
            table.add_column(column)
        for s in result["servers"]:
            table.add_row(
                s["node"],
                s["bmc"],
                s["power_state"],
                " ".join(f"{k}×{v}" for k, v in s["firmware_applied"].items()) or "-",
                str(len(s["bios_changes"])),
                " ".join(f"{k}×{v}" for k, v in s["resets"].items()) or "-",
                " ".join(f["kind"] for f in s["faults"]) or "-",
            )
        console.print(table)

    settings(ctx).emit(result, draw)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the lab. Idempotent: stopping a stopped lab is fine."""
    from clusterctl.sim import process

    stopped, pid = process.stop(_lab_dir())
    cfg = settings(ctx)
    cfg.emit(
        {"stopped": stopped, "pid": pid},
        lambda console: console.print("lab stopped" if stopped else "lab was not running"),
    )


@fault_app.command("add")
def fault_add(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="Node name, e.g. gpu0007."),
    kind: str = typer.Argument(..., help="Fault kind (see `clusterctl lab fault kinds`)."),
    param: list[str] = PARAM,
) -> None:
    """Inject a fault into the running lab. Example: clusterctl lab fault add gpu0007 xid -p code=79"""
    from clusterctl.sim import process
    from clusterctl.sim.faults import make_fault, parse_param_args

    params = parse_param_args(param)
    make_fault(node, kind, params)  # fail fast on a bad kind or parameter, before talking to the lab
    lab_dir = _lab_dir()
    info = process.require_running(lab_dir)
    added = process.control(lab_dir, info, "POST", "/faults", json={"node": node, "kind": kind, "params": params})
    settings(ctx).emit(added, lambda console: console.print(f"fault added: {node} {kind} {added['params']}"))


@fault_app.command("clear")
def fault_clear(
    ctx: typer.Context,
    node: str = typer.Argument(None, help="Only this node (default: all)."),
    kind: str = typer.Argument(None, help="Only this kind (default: all)."),
) -> None:
    """Clear faults: all, a node's, or one kind on a node."""
    from clusterctl.sim import process
    from clusterctl.sim.errors import FaultError
    from clusterctl.sim.faults import FAULT_KINDS

    if kind is not None and kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault kind {kind!r} (known: {', '.join(sorted(FAULT_KINDS))})")
    lab_dir = _lab_dir()
    info = process.require_running(lab_dir)
    query = {k: v for k, v in (("node", node), ("kind", kind)) if v}
    body = process.control(lab_dir, info, "DELETE", "/faults", params=query)
    settings(ctx).emit(body, lambda console: console.print(f"cleared {body['cleared']} fault(s)"))


@fault_app.command("kinds")
def fault_kinds(ctx: typer.Context) -> None:
    """List fault kinds, where they show (bmc/node), and their parameters with defaults."""
    from clusterctl.sim.faults import FAULT_KINDS

    data: list[dict[str, Any]] = [
        {"kind": k.name, "side": k.side, "params": k.params, "doc": k.doc} for k in FAULT_KINDS.values()
    ]

    def draw(console: Any) -> None:
        from rich.table import Table

        table = Table("kind", "side", "params", "effect")
        for d in data:
            table.add_row(d["kind"], d["side"], " ".join(f"{k}={v}" for k, v in d["params"].items()), d["doc"])
        console.print(table)

    settings(ctx).emit(data, draw)
