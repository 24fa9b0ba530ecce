"""`clusterctl provision`: take inventory nodes through discover -> firmware -> bios -> boot -> os -> validate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl import eventloop
from clusterctl.cli.context import settings
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from rich.console import Console

HELP = (
    "Bring nodes to `ready`: each stage observes the node, changes only what differs, and confirms.\n\n"
    "Stages, in order (choose with --stages; default all):\n\n"
    "  discover  BMC reachable; model, GPUs, PSUs, power vs the inventory (a failed PSU fails here)\n\n"
    "  firmware  components to their inventory versions: BMC image first, the rest in one reboot\n\n"
    "  bios      the node's BIOS attributes through a BIOS config job and one reboot\n\n"
    "  boot      installs software.os where no SSH server answers: software.os_image mounted as virtual media "
    "and booted once (ejected when the OS answers), else a one-time --boot-via override; power cycle, wait "
    "for SSH\n\n"
    "  os        playbooks/site.yml through ansible-runner, one run per batch of nodes reaching it "
    "(--os-batch, --os-batch-window, --forks); a node the playbook already passed with the same playbooks "
    "and variables is not run again\n\n"
    "  runtime   (not by default: os installs it too) playbooks/runtime.yml alone: the burn-in runtime, a "
    "versioned virtual environment with PyTorch and the workload, which `clusterctl burnin` checks for\n\n"
    "  validate  the node-side checks of `clusterctl validate` (GPUs, XIDs, InfiniBand, software) over SSH; "
    "a node is ready when it passes\n\n"
    "Skipped, never silently passed: a stage with nothing to act on or no transport is marked skipped with "
    "the reason, and the node's `ready` row lists what was skipped. `boot` is skipped when the inventory "
    "names no software.os or os_image; `os` when the node's SSH port does not answer (after an install by "
    "`boot` in the same run that is a failure instead); `validate` when the node's SSH port does not answer. So "
    "`clusterctl provision inventories/lab.yaml --yes` brings a `lab up --bare` lab to ready, its OS "
    "installed from virtual media.\n\n"
    "Reboots respect each rack's max_rebooting and power_budget_w. A killed run resumes when the same "
    "command runs again. One provision run at a time per state store: a second one is refused with the "
    "first one's host, pid and start time (a killed one is taken over). Exit 1 if any node failed or "
    "stayed pending; `clusterctl status` shows the run from the store while it goes on."
)

EPILOG = (
    "Examples:\n\n"
    "  clusterctl provision inventories/lab.yaml --yes\n\n"
    "  clusterctl provision site.yaml --limit a01-r01 --dry-run\n\n"
    "  clusterctl provision site.yaml --yes --canary 4 --max-failures 5%"
)


class ConfirmationNeeded(ClusterctlError):
    """A run that changes hardware was started without a terminal to confirm on and without --yes."""


def register(app: typer.Typer) -> None:
    app.command("provision", help=HELP, epilog=EPILOG)(provision)


def provision(
    ctx: typer.Context,
    inventory: Path = typer.Argument(..., help="Inventory file.", show_default=False),
    limit: str = typer.Option(None, "--limit", "-l", help="Nodes, racks or groups (hostlist patterns)."),
    stages: str = typer.Option(None, "--stages", help="Comma-separated stages to run, e.g. discover,firmware."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (observed diff and waves); change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a TTY)."),
    canary: int = typer.Option(0, "--canary", min=0, help="Do N nodes first; stop if any of them fails."),
    max_failures: str = typer.Option(None, "--max-failures", help="Stop after N failed nodes, or P% of them."),
    concurrency: int = typer.Option(64, "--concurrency", min=1,
                                    help="Nodes worked on at once (a node waiting for a reboot slot does not count)."),
    reboots: int = typer.Option(None, "--max-reboots", min=1,
                                help="Site-wide limit on concurrent reboots, counting every controller's."),
    boot_via: str = typer.Option("pxe", "--boot-via", help="Install boot: pxe, http or cd."),
    poll: float = typer.Option(5.0, "--poll-interval", min=0.01, help="Seconds between BMC polls."),
    job_timeout: float = typer.Option(2400.0, "--job-timeout", min=1.0, help="Seconds allowed per BMC job."),
    reboot_timeout: float = typer.Option(1800.0, "--reboot-timeout", min=1.0, help="Seconds allowed per reboot."),
    os_timeout: float = typer.Option(3600.0, "--os-timeout", min=1.0,
                                     help="Seconds allowed for an OS install (boot stage) and for one os-stage run."),
    request_timeout: float = typer.Option(30.0, "--request-timeout", min=0.1, help="Seconds per BMC request."),
    forks: int = typer.Option(50, "--forks", min=1, help="SSH connections per ansible-runner run (os stage)."),
    batch: int = typer.Option(200, "--os-batch", min=1, help="Most nodes in one ansible-runner run (os stage)."),
    batch_window: float = typer.Option(5.0, "--os-batch-window", min=0.0,
                                       help="Seconds the os stage waits for more nodes to share a run."),
    reapply: bool = typer.Option(False, "--reapply",
                                 help="Run the os playbooks again on nodes that already have them (fixes drift)."),
) -> None:
    from clusterctl.inventory import load_inventory
    from clusterctl.provision.context import Tuning
    from clusterctl.provision.engine import Options, ProvisionOptionError, parse_stages

    cfg = settings(ctx)
    if boot_via not in ("pxe", "http", "cd"):
        raise ProvisionOptionError(f"--boot-via {boot_via!r}: choose pxe, http or cd")
    inv = load_inventory(inventory)
    nodes = inv.select(limit)
    tuning = Tuning(poll_s=poll, job_deadline_s=job_timeout, reboot_deadline_s=reboot_timeout,
                    os_deadline_s=os_timeout, request_timeout_s=request_timeout, boot_via=boot_via,
                    stage_retry_wait_s=min(10.0, poll * 2), os_batch_window_s=batch_window, os_batch_max=batch,
                    os_forks=forks, os_reapply=reapply)
    options = Options(stages=parse_stages(stages), concurrency=concurrency, canary=canary,
                      max_failures=max_failures, max_rebooting_total=reboots, tuning=tuning)
    from clusterctl.provision.engine import failure_threshold

    failure_threshold(max_failures, len(nodes))  # a bad value is an error before anything starts
    if dry_run:
        _dry_run(cfg, inv, nodes, options)
        return
    if not yes:
        _confirm(len(nodes), options.stages)
    summary = _run(cfg, inv, nodes, options,
                   args={"limit": limit, "stages": list(options.stages), "canary": canary,
                         "max_failures": max_failures, "reapply": reapply})
    data = summary.as_dict()
    cfg.emit(data, lambda console: _draw_summary(console, data))
    if summary.failed or summary.pending:
        raise typer.Exit(1)


def _confirm(count: int, stages: Any) -> None:
    if not sys.stdin.isatty():
        raise ConfirmationNeeded(
            f"provisioning {count} node(s) changes firmware, BIOS and power: pass --yes to run without a terminal"
        )
    if not typer.confirm(f"Provision {count} node(s) through {', '.join(stages)}?", default=False, err=True):
        sys.stderr.write("aborted\n")
        raise typer.Exit(1)


def _run(cfg: Any, inv: Any, nodes: list[Any], options: Any, *, args: Any) -> Any:
    from clusterctl.provision.engine import Engine, Tracker
    from clusterctl.provision.progress import live

    tracker = Tracker(options.stages, len(nodes))
    show = cfg.err.is_terminal and cfg.verbosity >= 0

    async def go() -> Any:
        with cfg.open_store() as store:
            engine = Engine(inv, store, options, tracker=tracker)
            async with live(cfg.err, tracker, show):
                return await engine.run(nodes, args=args)

    return eventloop.run(go())


def _dry_run(cfg: Any, inv: Any, nodes: list[Any], options: Any) -> None:
    from clusterctl.provision.plan import plan

    data = eventloop.run(plan(inv, nodes, options))
    cfg.emit(data, lambda console: _draw_plan(console, data))


def _draw_plan(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, title="plan (observed diff)", title_justify="left")
    table.add_column("node")
    table.add_column("stage")
    table.add_column("would change")
    for node, stages in data["nodes"].items():
        for stage, found in stages.items():
            table.add_row(Text(node), Text(stage), Text(_describe(found)))
    console.print(table)
    if data["waves"]:
        waves = Table(show_edge=False, title="reboot waves", title_justify="left")
        for column in ("rack", "nodes to reboot", "at once", "waves", "max_rebooting", "power_budget_w"):
            waves.add_column(column)
        for rack, w in data["waves"].items():
            waves.add_row(Text(rack), str(w["nodes_to_reboot"]), str(w["at_once"]), str(w["waves"]),
                          str(w["max_rebooting"]), str(w["power_budget_w"] or "-"))
        console.print(waves)


def _describe(found: dict[str, Any]) -> str:
    if "error" in found:
        return f"error: {found['error']}"
    if "skip" in found:
        return f"skip: {found['skip']}"
    if "mismatches" in found:
        facts = found["facts"]
        text = f"{facts.get('model')} {facts.get('serial')}, {facts.get('gpus')} GPUs, {facts.get('psus')} PSUs"
        return text + ("; MISMATCH: " + "; ".join(found["mismatches"]) if found["mismatches"] else "")
    change = found.get("change") or {}
    if not change:
        return "nothing (already as desired)"
    parts = []
    for key, value in change.items():
        if isinstance(value, dict) and "to" in value:
            parts.append(f"{key} {value.get('from')} -> {value['to']}")
        else:
            parts.append(f"{key}: {value}")
    return ", ".join(parts)


def _draw_summary(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(
        f"run {data['run']}: {data['ready']}/{data['nodes']} ready, {len(data['failed'])} failed, "
        f"{len(data['pending'])} pending, {data['seconds']:.1f} s" + (f"; stopped: {data['stopped']}"
                                                                       if data["stopped"] else ""),
        markup=False, highlight=False,
    )
    for stage, by_reason in data["skipped"].items():
        count = sum(len(v) for v in by_reason.values())
        example = next(iter(by_reason))
        more = f" (+{len(by_reason) - 1} similar)" if len(by_reason) > 1 else ""
        console.print(f"skipped {stage} on {count} node(s): {example}{more}", markup=False, highlight=False)
    if data["failed"]:
        table = Table(show_edge=False, title="failed nodes", title_justify="left")
        for column in ("node", "stage", "reason"):
            table.add_column(column)
        for f in data["failed"]:
            table.add_row(Text(f["node"]), Text(f["stage"]), Text(f["reason"]))
        console.print(table)
