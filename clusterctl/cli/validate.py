"""`clusterctl validate`: node health against the inventory and the GPU model's ruleset.

Thin: parse, call clusterctl.validate.run (validate_nodes, record, quarantine_failed), render.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl.cli.context import settings
from clusterctl.errors import ClusterctlError, SelectionError

if TYPE_CHECKING:
    from rich.console import Console

    from clusterctl.validate.run import AgentCall, FleetReport

DEFAULT_CHECKS = ("gpu", "fabric", "software", "power")
CATEGORIES = (*DEFAULT_CHECKS, "bandwidth")
"""bandwidth runs all-reduce jobs that load the fabric and the GPUs: only when asked for."""
RING_CHOICES = ("none", "rack", "all")
EPILOG = (
    "Examples:\n\n"
    "  clusterctl validate inventories/site.yaml\n\n"
    "  clusterctl validate inventories/site.yaml --limit 'gpu[001-064]' --checks gpu,fabric -o json\n\n"
    "  clusterctl validate inventories/site.yaml --rules site-rules.yaml --quarantine\n\n"
    "  clusterctl validate inventories/site.yaml --checks bandwidth --ring rack\n\n"
    "Exit code 1 when any node fails a check; warnings alone exit 0."
)


def register(app: typer.Typer) -> None:
    app.command("validate", epilog=EPILOG)(validate)


def validate(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The inventory file.", show_default=False),
    limit: str = typer.Option(None, "--limit", "-l", help="Only these nodes, racks or groups (hostlists)."),
    checks: str = typer.Option(",".join(DEFAULT_CHECKS), "--checks",
                               help="Comma-separated: gpu, fabric, software, power, bandwidth (all-reduce between "
                                    "node pairs over the interconnect; only when named)."),
    rules: Path = typer.Option(None, "--rules", help="Site rules file, applied over the built-in ruleset."),
    quarantine: bool = typer.Option(False, "--quarantine", help="Drain (Slurm) or cordon+taint (Kubernetes) "
                                    "the nodes that fail."),
    quarantine_via: str = typer.Option(None, "--quarantine-via", help="slurm or kubernetes [default: slurm when "
                                       "the nodes have a Slurm partition in the inventory, else kubernetes when "
                                       "they have Kubernetes labels]."),
    slurm_conf: Path = typer.Option(None, "--slurm-conf", envvar="SLURM_CONF", help="slurm.conf for scontrol."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig [default: ~/.kube/config]."),
    context: str = typer.Option(None, "--context", help="kubeconfig context."),
    parallel: int = typer.Option(32, "--parallel", min=1, max=1024, help="Nodes validated at once."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", min=0.1, help="Seconds to open SSH."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds the agent may run on a node."),
    ring: str = typer.Option("none", "--ring", help="bandwidth: also one all-reduce ring per rack (rack) or "
                             "over every selected node (all)."),
    bandwidth_nproc: int = typer.Option(None, "--bandwidth-nproc", min=1, max=64, help="bandwidth: ranks per node "
                                        "\\[default: the nodes' GPU count]."),
    bandwidth_python: str = typer.Option(None, "--bandwidth-python", help="bandwidth: Python with torch on the "
                                         "nodes \\[default: this interpreter]."),
    bandwidth_workdir: str = typer.Option(None, "--bandwidth-workdir", help="bandwidth: directory holding "
                                          "workloads/ on the nodes \\[default: this checkout]."),
    agent_config: Path = typer.Option(
        None, "--agent-config",
        help="JSON file {node name or '*': {\"args\": [...], \"env\": {...}}}: extra arguments and environment "
             "for the agent on those nodes, e.g. --kernel-log FILE where the kernel log is not in the journal. "
             "Tests give the agent its fake NVML this way (CLUSTERCTL_AGENT_PYNVML, see clusterctl/validate/agent.py).",
    ),
) -> None:
    """Check GPUs, XIDs, InfiniBand, software versions and power/cooling of every selected node; with
    --checks bandwidth, also all-reduce bandwidth between node pairs (and rings with --ring)."""
    from clusterctl.inventory import load_inventory
    from clusterctl.validate import run as validation

    cfg = settings(ctx)
    wanted = _categories(checks)
    if ring not in RING_CHOICES:
        raise SelectionError(f"--ring {ring!r}: choose from {', '.join(RING_CHOICES)}")
    inventory = load_inventory(file)
    nodes = inventory.select(limit)
    via = validation.quarantine_via(nodes, quarantine_via) if quarantine else None
    request = validation.Request(
        categories=wanted, rules=rules, parallel=parallel, connect_timeout=connect_timeout, timeout=timeout,
        agent_call=_agent_calls(agent_config), ring=ring, bandwidth_nproc=bandwidth_nproc,
        bandwidth_python=bandwidth_python, bandwidth_workdir=bandwidth_workdir,
    )
    report = validation.validate_nodes(inventory, nodes, request,
                                       bmc_targets=_bmc_targets(file, limit) if "power" in wanted else None,
                                       phase=lambda label, total: _progress(cfg, total, label))
    with cfg.open_store() as store:
        args = {"limit": limit, "checks": sorted(wanted), "rules": str(rules) if rules else None}
        run_id = validation.record(store, report, inventory=str(file), args=args)
        actions = validation.quarantine_failed(store, report, run_id, via, slurm_conf=slurm_conf,
                                               kubeconfig=kubeconfig, context=context) if via else []
    data = {**report.as_dict(), "run": run_id, "quarantine": actions}
    if report.bandwidth is not None:
        data["bandwidth"] = report.bandwidth.as_dict()
    cfg.emit(data, lambda console: _draw(console, report, run_id, actions))
    if report.failed:
        raise typer.Exit(1)


def _categories(text: str) -> set[str]:
    wanted = {c.strip() for c in text.split(",") if c.strip()}
    unknown = wanted - set(CATEGORIES)
    if unknown or not wanted:
        raise SelectionError(f"--checks {text!r}: choose from {', '.join(CATEGORIES)}")
    return wanted


def _agent_calls(path: Path | None) -> Any:
    from clusterctl.validate.run import AgentCall

    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        calls = {
            name: AgentCall(tuple(str(a) for a in spec.get("args", [])),
                            {str(k): str(v) for k, v in spec.get("env", {}).items()})
            for name, spec in raw.items()
        }
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ClusterctlError(f"--agent-config {path}: not a JSON object of node -> {{args, env}}: {exc}") from None

    def call(node: str) -> AgentCall:
        return calls.get(node) or calls.get("*") or AgentCall()

    return call


def _bmc_targets(file: Path, limit: str | None) -> list[Any]:
    from clusterctl.redfish.target import targets_from_inventory

    return targets_from_inventory(file, limit)


@contextmanager
def _progress(cfg: Any, total: int, label: str = "validate") -> Iterator[Callable[[], None]]:
    """A transient bar on stderr; rich's Progress is thread-safe, so SSH threads advance it directly."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=cfg.err, transient=True, disable=cfg.verbosity < 0 or cfg.json) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def _draw(console: Console, report: FleetReport, run_id: int, actions: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    s = report.summary
    console.print(f"Validated {s['nodes']} nodes (run {run_id}): {s['pass']} pass, {s['warn']} warn, "
                  f"{s['fail']} fail", highlight=False, markup=False)
    bandwidth = report.bandwidth
    if bandwidth is not None:
        figures = [m.busbw_gbs for m in [*bandwidth.pairs, *bandwidth.rings] if m.busbw_gbs is not None]
        spread = f", bus bandwidth {min(figures):.1f}-{max(figures):.1f} GB/s" if figures else ""
        console.print(f"all-reduce: {len(bandwidth.pairs)} pairs in {len(bandwidth.rounds)} rounds, "
                      f"{len(bandwidth.rings)} rings{spread}", highlight=False, markup=False)
    rows = [(v, c) for v in report.verdicts for c in v.problems()]
    if not rows:
        return
    table = Table(show_edge=False, title="problems", title_justify="left")
    for column in ("node", "status", "check", "detail", "action"):
        table.add_column(column, overflow="fold")
    for verdict, check in sorted(rows, key=lambda r: (r[0].status != "fail", r[0].node)):
        style = "red" if check.status == "fail" else "yellow"
        table.add_row(Text(verdict.node), Text(check.status, style=style), Text(check.name), Text(check.detail),
                      Text(check.remediation or ""))
    console.print(table)
    for action in actions:
        mark = "quarantined" if action["ok"] else "NOT quarantined"
        why = "" if action["ok"] else f": {action['detail']}"
        console.print(f"{action['node']}: {mark} via {action['via']}{why}", highlight=False, markup=False)
