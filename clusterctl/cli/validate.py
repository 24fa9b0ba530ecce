"""`clusterctl validate`: node health against the inventory and the GPU model's ruleset.

Thin: parse, build the SSH and BMC targets, call clusterctl.validate.run, record, render.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
             "for the agent on those nodes, e.g. --kernel-log FILE where the kernel log is not in the journal, or "
             "CLUSTERCTL_AGENT_PYNVML naming a pynvml stand-in (see clusterctl/validate/agent.py).",
    ),
) -> None:
    """Check GPUs, XIDs, InfiniBand, software versions and power/cooling of every selected node; with
    --checks bandwidth, also all-reduce bandwidth between node pairs (and rings with --ring)."""
    from clusterctl.inventory import load_inventory
    from clusterctl.ssh import SSHPool, target_from_node
    from clusterctl.validate.expect import Expectation
    from clusterctl.validate.rules import load_ruleset
    from clusterctl.validate.run import collect_reports, judge, record

    cfg = settings(ctx)
    wanted = _categories(checks)
    if ring not in RING_CHOICES:
        raise SelectionError(f"--ring {ring!r}: choose from {', '.join(RING_CHOICES)}")
    inventory = load_inventory(file)
    nodes = inventory.select(limit)
    via = _quarantine_via(nodes, quarantine_via) if quarantine else None
    expectations = [Expectation.from_node(n) for n in nodes]
    rulesets = {model: load_ruleset(model, rules) for model in {e.gpu_model for e in expectations}}
    calls = _agent_calls(agent_config)
    node_side = bool(wanted & {"gpu", "fabric", "software"})
    ssh_targets = [target_from_node(n, inventory) for n in nodes] if node_side or "bandwidth" in wanted else []
    bmc_targets = _bmc_targets(file, limit) if "power" in wanted else None
    bench = _bench_options(rulesets, expectations, bandwidth_nproc, bandwidth_python, bandwidth_workdir,
                           connect_timeout) if "bandwidth" in wanted else None

    with _progress(cfg, len(nodes) * (node_side + (bmc_targets is not None))) as advance, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="telemetry") as background:
        power = background.submit(_telemetry, bmc_targets, parallel, advance) if bmc_targets is not None else None
        reports = None
        if node_side:
            pool = SSHPool(max_sessions=parallel, connect_timeout=connect_timeout, command_timeout=timeout)
            reports = collect_reports(ssh_targets, pool, agent_call=calls, max_parallel=parallel,
                                      on_done=lambda _o: advance())
        telemetry = power.result() if power is not None else None
    bandwidth = _bandwidth(cfg, bench, ssh_targets, expectations, rulesets, ring, parallel) if bench else None
    report = judge(expectations, rulesets, categories=wanted, reports=reports, telemetry=telemetry,
                   rack_budgets={name: rack.power_budget_w for name, rack in inventory.racks.items()})
    if bandwidth is not None:
        for verdict in report.verdicts:
            verdict.checks.extend(bandwidth[1].get(verdict.node, []))
    with cfg.open_store() as store:
        run_id = record(store, report, inventory=str(file),
                        args={"limit": limit, "checks": sorted(wanted), "rules": str(rules) if rules else None})
        actions = _quarantine(store, report, run_id, via, slurm_conf, kubeconfig, context) if via else []
    data = {**report.as_dict(), "run": run_id, "quarantine": actions}
    if bandwidth is not None:
        data["bandwidth"] = bandwidth[0].as_dict()
    cfg.emit(data, lambda console: _draw(console, report, run_id, actions, bandwidth[0] if bandwidth else None))
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


def _bench_options(rulesets: dict[Any, Any], expectations: list[Any], nproc: int | None, python: str | None,
                   workdir: str | None, connect_timeout: float) -> Any:
    import sys

    from clusterctl.validate.bandwidth import WORKLOAD_ROOT, BenchOptions

    gpus = min((e.gpu_count for e in expectations), default=0)
    # Sizes and time limits are the first node's model's: one job must run one command on all its nodes.
    rules = rulesets[expectations[0].gpu_model] if expectations else next(iter(rulesets.values()))
    return BenchOptions.from_rules(rules, python=python or sys.executable, workdir=workdir or str(WORKLOAD_ROOT),
                                   nproc=nproc or max(1, gpus), connect_timeout=connect_timeout)


def _bandwidth(cfg: Any, bench: Any, targets: list[Any], expectations: list[Any], rulesets: dict[Any, Any],
               ring: str, parallel: int) -> tuple[Any, dict[str, Any]]:
    """Pair rounds (and rings) over SSH, then each node's bandwidth checks."""
    from clusterctl.validate.bandwidth import bandwidth_checks, measure_bandwidth, plan_pairs, ring_groups

    names = [e.node for e in expectations]
    rings = ring_groups(expectations, ring)
    jobs = sum(len(r) for r in plan_pairs(names)) + len(rings)
    with _progress(cfg, jobs, "bandwidth") as advance:
        run = measure_bandwidth(names, {t.name: t for t in targets}, bench, rings=rings, max_parallel=parallel,
                                on_done=lambda _m: advance())
    return run, bandwidth_checks(run, {e.node: e for e in expectations}, rulesets, nproc=bench.nproc)


def _bmc_targets(file: Path, limit: str | None) -> list[Any]:
    from clusterctl.redfish.target import targets_from_inventory

    return targets_from_inventory(file, limit)


def _telemetry(targets: list[Any], parallel: int, advance: Any) -> Any:
    from clusterctl.validate.telemetry import gather_telemetry

    return gather_telemetry(targets, max_bmcs=parallel, on_done=lambda _r: advance())


@contextmanager
def _progress(cfg: Any, total: int, label: str = "validate") -> Iterator[Callable[[], None]]:
    """A transient bar on stderr; rich's Progress is thread-safe, so SSH threads advance it directly."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=cfg.err, transient=True, disable=cfg.verbosity < 0 or cfg.json) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def _quarantine_via(nodes: list[Any], given: str | None) -> str:
    if given:
        if given not in ("slurm", "kubernetes"):
            raise SelectionError(f"--quarantine-via {given!r}: choose slurm or kubernetes")
        return given
    if any(n.scheduler.slurm.partition for n in nodes):
        return "slurm"
    if any(n.scheduler.kubernetes.labels for n in nodes):
        return "kubernetes"
    raise SelectionError("--quarantine: the inventory names no scheduler for these nodes; add --quarantine-via "
                         "slurm or --quarantine-via kubernetes")


def _quarantine(store: Any, report: FleetReport, run_id: int, via: str, slurm_conf: Path | None,
                kubeconfig: Path | None, context: str | None) -> list[dict[str, Any]]:
    """Hand the failed nodes to burn-in's quarantine (clusterctl.burnin.quarantine), which owns it."""
    from clusterctl.burnin import quarantine as quarantine_mod

    failing = {v.node: [f"{c.name}: {c.detail}" for c in v.problems() if c.status == "fail"]
               for v in report.verdicts if v.status == "fail"}
    if not failing:
        return []
    reach = quarantine_mod.Schedulers(slurm_conf=str(slurm_conf) if slurm_conf else None,
                                      kubeconfig=str(kubeconfig) if kubeconfig else None, context=context)
    actions = quarantine_mod.quarantine(failing, via=via, store=store, source="validate", schedulers=reach,
                                        run_id=run_id)
    return [a.as_dict() for a in actions]


def _draw(console: Console, report: FleetReport, run_id: int, actions: list[dict[str, Any]],
          bandwidth: Any = None) -> None:
    from rich.table import Table
    from rich.text import Text

    s = report.summary
    console.print(f"Validated {s['nodes']} nodes (run {run_id}): {s['pass']} pass, {s['warn']} warn, "
                  f"{s['fail']} fail", highlight=False, markup=False)
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
