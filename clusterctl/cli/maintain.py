"""`clusterctl plan` and `clusterctl maintain`: day-2 drift, and rolling it out under a capacity floor."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl import eventloop
from clusterctl.cli import plan as plan_cli
from clusterctl.cli.context import settings
from clusterctl.errors import ClusterctlError
from clusterctl.maintain.ledger import ACTIONS

if TYPE_CHECKING:
    from rich.console import Console

CONTROLS = ("status", *ACTIONS)
HELP = (
    "Roll the inventory's firmware, BIOS and software out to a live cluster: for each node that differs "
    "(`clusterctl plan`), drain it through its scheduler (Slurm: `scontrol update state=drain`; Kubernetes: "
    "cordon and evict through the Eviction API, so PodDisruptionBudgets hold; a node in no scheduler is taken "
    "directly), wait for its jobs, update it through the provision stages (firmware, bios, "
    "os: the same journal, exactly-once flashing and resume), validate it, burn it in alone, and resume it. "
    "A node that fails stays drained with the failing check as its reason (`sinfo -R`; Kubernetes: cordoned "
    "and tainted). Batches never take more "
    "than --max-unavailable nodes out of service, counting nodes already down, nor a partition below "
    "--min-available. Killed, the same command picks up the nodes it held.\n\n"
    "`clusterctl maintain status|pause|resume|abort`: where every node is and since when; pause stops "
    "starting new nodes, abort leaves drained nodes drained with a reason."
)
EPILOG = (
    "Examples:\n\n"
    "  clusterctl maintain site.yaml --dry-run\n\n"
    "  clusterctl maintain site.yaml --yes --max-unavailable 10% --min-available gpu=90% --canary 2\n\n"
    "  clusterctl maintain status"
)


class ConfirmationNeeded(ClusterctlError):
    """A rollout that drains nodes was started without a terminal to confirm on and without --yes."""


def register(app: typer.Typer) -> None:
    plan_cli.register(app)
    app.command("maintain", help=HELP, epilog=EPILOG)(maintain)


def maintain(
    ctx: typer.Context,
    target: str = typer.Argument(..., metavar="FILE|status|pause|resume|abort",
                                 help="Inventory file, or a control of the running rollout.", show_default=False),
    limit: str = typer.Option(None, "--limit", "-l", help="Nodes, racks or groups (hostlist patterns)."),
    max_unavailable: str = typer.Option("5%", "--max-unavailable", help="At most N or P% of the fleet out of "
                                        "service at once, counting nodes already down."),
    min_available: list[str] = typer.Option([], "--min-available", help="PARTITION=P% (or =N) that must stay "
                                            "available; repeat for several partitions."),
    drain_timeout: str = typer.Option("1h", "--drain-timeout", help="A node whose jobs run longer is reported "
                                      "and skipped (resumed untouched)."),
    force_after: str = typer.Option(None, "--force-after", help="Requeue the jobs still on a draining node "
                                    "after this long (Slurm `scontrol requeue`), or delete its pods (Kubernetes), "
                                    "logged as an event."),
    canary: int = typer.Option(0, "--canary", min=0, help="The first N nodes go alone; stop if one fails."),
    max_failures: str = typer.Option(None, "--max-failures", help="Stop after N failed nodes, or P% of them."),
    burnin_minutes: float = typer.Option(5.0, "--burnin-minutes", min=0.0, help="Short burn-in per node "
                                         "(0: none)."),
    burnin_model: str = typer.Option("transformer-big", "--burnin-model", help="The burn-in workload's model."),
    slurm_conf: Path = typer.Option(None, "--slurm-conf", envvar="SLURM_CONF", help="slurm.conf for scontrol."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig \\[default: ~/.kube/config or "
                                    "in-cluster]."),
    context: str = typer.Option(None, "--context", help="kubeconfig context."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the drift and the first batch; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a TTY)."),
    poll: float = typer.Option(5.0, "--poll-interval", min=0.01, help="Seconds between BMC and scheduler polls."),
    job_timeout: float = typer.Option(2400.0, "--job-timeout", min=1.0, help="Seconds allowed per BMC job."),
    reboot_timeout: float = typer.Option(1800.0, "--reboot-timeout", min=1.0, help="Seconds allowed per reboot."),
    request_timeout: float = typer.Option(30.0, "--request-timeout", min=0.1, help="Seconds per BMC request."),
) -> None:
    cfg = settings(ctx)
    if target in CONTROLS:
        _control(cfg, target)
        return
    from clusterctl.burnin.quarantine import Schedulers
    from clusterctl.cli.burnin import parse_duration
    from clusterctl.inventory import load_inventory
    from clusterctl.maintain.rollout import MaintainOptions, Rollout
    from clusterctl.provision.context import Tuning
    from clusterctl.provision.engine import failure_threshold

    inv = load_inventory(Path(target))
    nodes = inv.select(limit)
    failure_threshold(max_failures, len(nodes))
    tuning = Tuning(poll_s=poll, job_deadline_s=job_timeout, reboot_deadline_s=reboot_timeout,
                    request_timeout_s=request_timeout, stage_retry_wait_s=min(10.0, poll * 2))
    options = MaintainOptions(
        max_unavailable=max_unavailable, min_available=tuple(min_available),
        drain_timeout_s=parse_duration(drain_timeout, "--drain-timeout"),
        force_after_s=parse_duration(force_after, "--force-after") if force_after else None, canary=canary,
        max_failures=max_failures,
        burnin_minutes=burnin_minutes, burnin_model=burnin_model, poll_s=poll,
        schedulers=Schedulers(slurm_conf=str(slurm_conf) if slurm_conf else None,
                              kubeconfig=str(kubeconfig) if kubeconfig else None, context=context),
        tuning=tuning)
    with cfg.open_store() as store:
        rollout = Rollout(inv, store, options, announce=cfg.note)  # options are checked here, before any change
        if dry_run:
            data = eventloop.run(_dry_run(rollout, nodes))
            cfg.emit(data, lambda console: _draw_dry_run(console, data))
            return
        if not yes:
            _confirm(len(nodes))
        report = eventloop.run(rollout.run(nodes, args={"limit": limit, "max_unavailable": max_unavailable,
                                                        "min_available": list(min_available), "canary": canary}))
    data = report.as_dict()
    cfg.emit(data, lambda console: _draw_report(console, data))
    if report.failed or report.stopped or report.skipped:
        raise typer.Exit(1)


async def _dry_run(rollout: Any, nodes: list[Any]) -> dict[str, Any]:
    from clusterctl.maintain.drift import summarize

    drifts, previous = await rollout.plan(nodes)
    states = rollout.scheduler.states()
    down = rollout.out_of_service(states)
    from clusterctl.provision.engine import interleave_racks

    by_name = {n.name: n for n in nodes}
    drifted = [n.name for n in interleave_racks([by_name[d.node] for d in drifts if d.drifted])]
    first = rollout.floor.choose(drifted, down, rollout.options.canary or None)
    return {"nodes": len(nodes), "drifted": drifted, "summary": summarize(drifts),
            "max_unavailable": rollout.floor.max_unavailable, "unavailable_now": sorted(down),
            "first_batch": first, "held_by_earlier_rollout": sorted(n for n, s in previous.items()
                                                                      if s.state not in ("resumed", "skipped"))}


def _confirm(count: int) -> None:
    if not sys.stdin.isatty():
        raise ConfirmationNeeded(f"maintaining {count} node(s) drains them and changes firmware, BIOS and "
                                 "software: pass --yes to run without a terminal")
    if not typer.confirm(f"Maintain {count} node(s)?", default=False, err=True):
        sys.stderr.write("aborted\n")
        raise typer.Exit(1)


def _control(cfg: Any, action: str) -> None:
    from clusterctl.maintain import ledger

    with cfg.open_store() as store:
        if action != "status":
            ledger.control(store, action)
        run = store.latest_run("maintain")
        states = ledger.last_states(store)
        control = ledger.current_control(store, _run_start_event(store, run))
        now = time.time()
        spent = ledger.time_in_states(store, now=now)
    data = {
        "run": None if run is None else {"id": run.id, "status": run.status},
        "control": control or "running",
        "nodes": [{**s.as_dict(), "for_s": round(now - s.since, 1), "time_in_states_s": spent.get(s.node, {})}
                  for s in sorted(states.values(), key=lambda s: s.node)],
    }
    cfg.emit(data, lambda console: _draw_status(console, data))


def _run_start_event(store: Any, run: Any) -> int:
    if run is None:
        return 0
    started = store.events(0, run_id=run.id, limit=1)
    return started[0].id - 1 if started else 0


def _draw_status(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    run = data["run"]
    shown = "none yet" if run is None else f"run {run['id']} {run['status']}"
    console.print(f"rollout: {shown}; "
                  f"control: {data['control']}", markup=False, highlight=False)
    table = Table(show_edge=False)
    for column in ("node", "state", "for", "reason"):
        table.add_column(column)
    for n in data["nodes"]:
        table.add_row(Text(n["node"]), Text(n["state"]), f"{n['for_s']:.0f} s", Text(n["reason"] or ""))
    console.print(table)


def _draw_dry_run(console: Console, data: dict[str, Any]) -> None:
    from clusterctl.maintain.drift import summary_lines

    console.print(f"{len(data['drifted'])} of {data['nodes']} node(s) to maintain; at most "
                  f"{data['max_unavailable']} out of service at once ({len(data['unavailable_now'])} already)",
                  markup=False, highlight=False)
    for line in summary_lines(data["summary"]):
        console.print("  " + line, markup=False, highlight=False)
    console.print(f"first batch: {', '.join(data['first_batch']) or '(none fits under the floor)'}",
                  markup=False, highlight=False)


def _draw_report(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(f"run {data['run']}: {len(data['resumed'])}/{len(data['drifted'])} resumed, "
                  f"{len(data['failed'])} failed and left drained, {len(data['skipped'])} skipped; "
                  f"peak {data['peak_unavailable']} unavailable (max {data['max_unavailable']}); "
                  f"{data['seconds']:.1f} s" + (f"; stopped: {data['stopped']}" if data["stopped"] else ""),
                  markup=False, highlight=False)
    rows = [(n, "failed", r) for n, r in data["failed"].items()] + \
           [(n, "skipped", r) for n, r in data["skipped"].items()] + [(n, "held", r) for n, r in data["held"].items()]
    if rows:
        table = Table(show_edge=False)
        for column in ("node", "outcome", "reason"):
            table.add_column(column)
        for node, outcome, reason in rows:
            table.add_row(Text(node), Text(outcome), Text(reason))
        console.print(table)
