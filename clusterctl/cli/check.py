"""`clusterctl check`: one periodic check round; `check schedule` its timer; `clusterctl trends` the history.

Thin: parse, call clusterctl.check (round, schedule, trends), render.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl.cli.burnin import _RunByDefault
from clusterctl.cli.context import settings
from clusterctl.errors import ClusterctlError, SelectionError

if TYPE_CHECKING:
    from rich.console import Console

    from clusterctl.check.round import RoundResult

EPILOG = (
    "Examples:\n\n"
    "  clusterctl check inventories/site.yaml --suite quick\n\n"
    "  clusterctl check inventories/site.yaml --limit 'gpu[0001-0064]' --drain-on regression -o json\n\n"
    "  clusterctl check schedule inventories/site.yaml --suite quick --every 6h --print\n\n"
    "Exit code 1 when a node fails a check or regressed against its peers or its own history."
)

app = typer.Typer(cls=_RunByDefault, help="Periodic checks: every node's health and speed over time, regressions "
                  "named.", no_args_is_help=False, rich_markup_mode="rich")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="check")
    root.command("trends")(trends)


def parse_days(text: str, option: str) -> float:
    """30d, 12h, 90m -> days."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", text or "")
    if not match:
        raise ClusterctlError(f"{option}: {text!r} is not a duration (examples: 30d, 12h, 90m)")
    return float(match.group(1)) / {"d": 1, "h": 24, "m": 1440}[match.group(2)]


@app.command("run", epilog=EPILOG)
def run(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The inventory file.", show_default=False),
    limit: str = typer.Option(None, "--limit", "-l", help="Only these nodes, racks or groups (hostlists)."),
    suite: str = typer.Option("quick", "--suite", help="quick: validate's checks and BMC telemetry (≤ 1 min a node); "
                              "standard: and all-reduce between neighbour pairs and one ring per rack, and a short "
                              "single-node burn-in (≤ 5 min); deep: a ring across racks, a longer burn-in and DCGM "
                              "diagnostics level 3 (≤ 30 min)."),
    burnin_minutes: float = typer.Option(None, "--burnin-minutes", min=0.001, max=600, help="The burn-in's length "
                                         "\\[default: 3 for standard, 15 for deep]."),
    burnin_model: str = typer.Option("transformer-big", "--burnin-model", help="The burn-in's model."),
    launcher: str = typer.Option("ssh", "--launcher", help="ssh: the nodes named; slurm: only nodes sinfo reports "
                                 "idle, each held by a low-priority exclusive job while the round runs (a node that "
                                 "got busy meanwhile is skipped); kubernetes: the same with a Job per node asking for "
                                 "all its GPUs at a PriorityClass below users' that never preempts."),
    hold_start_timeout: float = typer.Option(30.0, "--hold-start-timeout", min=1, help="seconds a hold job "
                                             "may pend before its node counts as busy and is skipped."),
    rules: Path = typer.Option(None, "--rules", help="Site rules file, applied over the built-in ruleset."),
    limits: Path = typer.Option(None, "--limits", help="Limits of the peer and history judges per metric (YAML) "
                                "\\[default: clusterctl/check/limits.yaml]."),
    window: str = typer.Option(None, "--window", help="History a node is compared with (its rolling median) "
                               "\\[default: 7d, from the limits file]."),
    max_drop: float = typer.Option(None, "--max-drop", min=0.001, max=0.9, help="A level (clock, fan speed) this "
                                   "share below its rolling median is a regression \\[default: 0.05]."),
    max_rise: float = typer.Option(None, "--max-rise", min=0.1, help="A temperature this many °C over its rolling "
                                   "median is a regression \\[default: 5]."),
    idle_from: str = typer.Option(None, "--idle-from", help="slurm: only the nodes Slurm reports idle (a node "
                                  "running a job is never touched); the others are listed as skipped."),
    drain_on: str = typer.Option(None, "--drain-on", help="fail or regression: drain (Slurm) or cordon (Kubernetes) "
                                 "those nodes with the reason, as burn-in quarantine does."),
    drain_via: str = typer.Option(None, "--drain-via", help="slurm or kubernetes \\[default: from the inventory]."),
    slurm_conf: Path = typer.Option(None, "--slurm-conf", envvar="SLURM_CONF", help="slurm.conf for scontrol."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig [default: ~/.kube/config]."),
    context: str = typer.Option(None, "--context", help="kubeconfig context."),
    namespace: str = typer.Option("default", "--namespace", help="kubernetes: the namespace of the hold Jobs."),
    parallel: int = typer.Option(32, "--parallel", min=1, max=1024, help="Nodes checked at once."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", min=0.1, help="Seconds to open SSH."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, help="Seconds the agent may run on a node."),
    top: int = typer.Option(20, "--top", min=1, help="Early-warning entries shown."),
) -> None:
    """One check round on idle nodes: validate's checks and BMC telemetry; every figure stored per node and
    round; regressions against peers and each node's own history named; early-warning scores, worst first."""
    from clusterctl.check.limits import load as load_limits
    from clusterctl.check.round import SUITES, Suite
    from clusterctl.cli.validate import DEFAULT_CHECKS
    from clusterctl.inventory import load_inventory
    from clusterctl.validate import run as validation

    cfg = settings(ctx)
    if suite not in SUITES:
        raise SelectionError(f"--suite {suite!r}: choose {', '.join(SUITES)}")
    if burnin_model not in MODELS:
        raise SelectionError(f"--burnin-model {burnin_model!r}: choose {', '.join(MODELS)}")
    plan = Suite.named(suite, burnin_minutes=burnin_minutes, burnin_model=burnin_model)
    if launcher not in ("ssh", "slurm", "kubernetes"):
        raise SelectionError(f"--launcher {launcher!r}: choose ssh, slurm or kubernetes")
    if launcher != "ssh" and idle_from:
        raise SelectionError(f"--launcher {launcher} already takes only idle nodes; drop --idle-from")
    if drain_on not in (None, "fail", "regression"):
        raise SelectionError(f"--drain-on {drain_on!r}: choose fail or regression")
    policy = load_limits(limits, window_days=parse_days(window, "--window") if window else None,
                         max_drop=max_drop, max_rise_c=max_rise)
    if idle_from not in (None, "slurm"):
        raise SelectionError(f"--idle-from {idle_from!r}: only slurm is built")
    inventory = load_inventory(file)
    nodes = inventory.select(limit)
    skipped: dict[str, str] = {}
    via = validation.quarantine_via(nodes, drain_via) if drain_on else None
    holds = None
    hold_minutes = 10 + plan.burnin_minutes + (45 if plan.dcgm else 0)
    if launcher == "kubernetes":
        from clusterctl.burnin.launchers.kubernetes import api_client
        from clusterctl.check import kube_hold

        api = api_client(str(kubeconfig) if kubeconfig else None, context)
        manifests = kube_hold.render(inventory, [n.name for n in nodes], namespace=namespace, minutes=hold_minutes)
        holds = kube_hold.hold_nodes(api, manifests, start_timeout_s=hold_start_timeout)
        skipped = holds.skipped
        nodes = [n for n in nodes if n.name in holds.held]
    elif idle_from == "slurm" or launcher == "slurm":
        from clusterctl.check import hold
        from clusterctl.check.idle import slurm_states, split_idle

        names = [n.name for n in nodes]
        conf = str(slurm_conf) if slurm_conf else None
        if launcher == "slurm":
            holds = hold.hold_idle(names, {n.name: n.scheduler.slurm.partition for n in nodes}, minutes=hold_minutes,
                                   slurm_conf=conf, start_timeout_s=hold_start_timeout)
            idle, skipped = [n for n in names if n in holds.held], holds.skipped
        else:
            idle, skipped = split_idle(names, slurm_states(names, conf))
        nodes = [n for n in nodes if n.name in set(idle)]
    if not nodes and (holds is not None or idle_from):
        cfg.emit({"nodes": [], "skipped": skipped}, lambda console: console.print(
            f"no idle node to check ({len(skipped)} busy or unknown to the scheduler)", highlight=False, markup=False))
        return
    categories = set(DEFAULT_CHECKS) | ({"bandwidth"} if plan.ring != "none" else set())
    request = validation.Request(categories=categories, rules=rules, parallel=parallel,
                                 connect_timeout=connect_timeout, timeout=timeout, ring=plan.ring)
    started = time.monotonic()
    try:
        result = _round(cfg, file, inventory, nodes, request, policy, plan, limit, suite, via, drain_on,
                        slurm_conf, kubeconfig, context)
    finally:
        if holds is not None and launcher == "kubernetes":
            kube_hold.release(api, holds)
        elif holds is not None:
            hold.release(holds, str(slurm_conf) if slurm_conf else None)
    elapsed = time.monotonic() - started
    data = result.as_dict(top)
    data["seconds"]["total"] = round(elapsed, 2)
    data["skipped"] = {**skipped, **data["skipped"]}  # the scheduler's busy nodes, and those another controller held
    if holds is not None:
        data["held"] = holds.held
    cfg.emit(data, lambda console: _draw(console, result, top))
    if result.failed:
        raise typer.Exit(1)


def _round(cfg: Any, file: Path, inventory: Any, nodes: Any, request: Any, policy: Any, plan: Any,
           limit: str | None, suite: str, via: str | None, drain_on: str | None, slurm_conf: Path | None,
           kubeconfig: Path | None, context: str | None) -> RoundResult:
    from clusterctl.check.round import drain, run_round
    from clusterctl.cli.validate import _progress
    from clusterctl.redfish.target import targets_for

    with cfg.open_store() as store:
        # The inventory already loaded, not read again: the same nodes' BMCs.
        targets = list(targets_for(inventory, nodes).values())
        result = run_round(store, inventory, nodes, request, policy, bmc_targets=targets,
                           inventory_path=str(file), args={"limit": limit, "suite": suite,
                                                           "burnin_minutes": plan.burnin_minutes},
                           phase=lambda label, total: _progress(cfg, total, label), suite=plan)
        if via is not None and drain_on is not None:
            drain(store, result, drain_on, via, slurm_conf=str(slurm_conf) if slurm_conf else None,
                  kubeconfig=str(kubeconfig) if kubeconfig else None, context=context)
    return result


def _draw(console: Console, result: RoundResult, top: int) -> None:
    from rich.table import Table
    from rich.text import Text

    from clusterctl.check.risk import worst_first
    from clusterctl.verdict import summarize

    s = summarize(result.verdicts)
    console.print(f"Checked {s['nodes']} nodes (run {result.run_id}): {s['pass']} pass, {s['warn']} warn, "
                  f"{s['fail']} fail; {len(result.findings)} regression(s) on {len(result.regressed)} node(s)",
                  highlight=False, markup=False)
    if result.held:
        from clusterctl.state.node_leases import describe

        console.print(f"Skipped {len(result.held)} node(s) another controller holds: "
                      + "; ".join(f"{node} {describe(h)}" for node, h in sorted(result.held.items())),
                      highlight=False, markup=False)
    failing = [(v.node, c) for v in result.verdicts for c in v.problems() if not c.rule or
               not c.rule.startswith("check.")]
    if failing:
        table = Table(show_edge=False, title="absolute rules", title_justify="left")
        for column in ("node", "status", "check", "detail", "action"):
            table.add_column(column, overflow="fold")
        for node, c in sorted(failing, key=lambda r: (r[1].status != "fail", r[0])):
            table.add_row(Text(node), Text(c.status), Text(c.name), Text(c.detail), Text(c.remediation or ""))
        console.print(table)
    if result.findings:
        table = Table(show_edge=False, title="regressions", title_justify="left")
        for column in ("node", "metric", "against", "change", "since", "detail", "action"):
            table.add_column(column, overflow="fold")
        for f in sorted(result.findings, key=lambda f: (f.node, f.metric)):
            since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(f.since)) if f.since else ""
            change = f"{f.value:.1%}" if f.judge in ("peers",) or f.metric in _LEVELS else f"{f.value:,.1f}"
            table.add_row(Text(f.node), Text(f.metric), Text(f.judge), Text(change), Text(since), Text(f.detail),
                          Text(f.remediation))
        console.print(table)
    ranked = worst_first(result.risks, top)
    if ranked:
        table = Table(show_edge=False, title="early warning (worst first)", title_justify="left")
        for column in ("node", "score", "why"):
            table.add_column(column, overflow="fold")
        for r in ranked:
            table.add_row(Text(r.node), Text(f"{r.score:.2f}"), Text(r.words))
        console.print(table)


_LEVELS = {"gpu.sm_clock_mhz", "bmc.fan_rpm", "ib.rate_gbps", "fabric.busbw_gbs", "burnin.tokens_per_s"}
MODELS = ("transformer-tiny", "transformer-small", "transformer-base", "transformer-big")
SYSTEMD_USER_DIR = Path("~/.config/systemd/user")


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The inventory file.", show_default=False),
    suite: str = typer.Option("quick", "--suite", help="The suite each round runs."),
    every: str = typer.Option("6h", "--every", help="Interval: minutes dividing an hour, hours dividing a day, 1d."),
    limit: str = typer.Option(None, "--limit", "-l", help="Only these nodes, racks or groups (hostlists)."),
    via: str = typer.Option("systemd", "--via", help="systemd (a timer), slurm (a scrontab entry) or kubernetes "
                            "(a CronJob)."),
    print_only: bool = typer.Option(False, "--print", help="Print what would be installed and stop."),
    out: Path = typer.Option(None, "--out", help=r"Directory to write into \[default: ~/.config/systemd/user for "
                             "systemd, the current directory otherwise]."),
    image: str = typer.Option(None, "--image", help="kubernetes: the image holding clusterctl."),
    namespace: str = typer.Option("default", "--namespace", help="kubernetes: the CronJob's namespace."),
    priority_class: str = typer.Option(None, "--priority-class", help="kubernetes: a low PriorityClass, so rounds "
                                       "never preempt users' pods."),
    slurm_conf: Path = typer.Option(None, "--slurm-conf", envvar="SLURM_CONF", help="slurm: slurm.conf for scrontab."),
) -> None:
    """Run check rounds on a schedule: write a systemd timer and service (into --out, by default the user's unit
    directory), install a Slurm scrontab entry (replacing this suite's earlier one), or write a Kubernetes CronJob
    (--print: only print them). Enabling the timer and applying the CronJob are printed at the end."""
    from clusterctl.check import schedule as sched
    from clusterctl.check.round import SUITES
    from clusterctl.inventory import load_inventory

    cfg = settings(ctx)
    if suite not in SUITES:
        raise SelectionError(f"--suite {suite!r}: choose {', '.join(SUITES)}")
    if via not in sched.KINDS:
        raise SelectionError(f"--via {via!r}: choose from {', '.join(sched.KINDS)}")
    load_inventory(file)  # a schedule of an inventory that does not load would fail every round
    if limit:
        load_inventory(file).select(limit)
    job = sched.Job(file, suite, sched.parse_every(every), limit)
    if via == "systemd":
        files = sched.systemd_units(job)
        enable = f"systemctl --user daemon-reload && systemctl --user enable --now {job.name}.timer"
    elif via == "slurm":
        files = {f"{job.name}.scrontab": sched.scrontab(job)}
        enable = "installed with scrontab (scrontab -l shows it)"
    else:
        if not image:
            raise SelectionError("--via kubernetes needs --image (an image with clusterctl as its entry point)")
        files = {f"{job.name}.yaml": sched.cronjob(job, image=image, namespace=namespace,
                                                    priority_class=priority_class)}
        enable = (f"kubectl create configmap clusterctl-inventory --from-file={file.name}={file} -n {namespace}; "
                  f"kubectl apply -f {job.name}.yaml")
    written = []
    if not print_only:
        target = (out or (SYSTEMD_USER_DIR if via == "systemd" else Path("."))).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (target / name).write_text(text, encoding="utf-8")
            written.append(str(target / name))
        if via == "slurm":
            sched.install_scrontab(files[f"{job.name}.scrontab"], job.name,
                                   str(slurm_conf) if slurm_conf else None)
    data = {"via": via, "files": files, "written": written, "enable": enable}

    def draw(console: Console) -> None:
        for name, text in files.items():
            console.print(f"# {name}", highlight=False, markup=False)
            console.print(text, highlight=False, markup=False, soft_wrap=True)
        if written:
            console.print(f"wrote {', '.join(written)}; enable with: {enable}", highlight=False, markup=False)

    cfg.emit(data, draw)


def trends(
    ctx: typer.Context,
    node: str = typer.Option(None, "--node", help="One node: its figures per metric with its regressions."),
    metric: str = typer.Option(None, "--metric", help="Only this metric (e.g. gpu.ecc_corrected)."),
    since: str = typer.Option("30d", "--since", help="How far back, e.g. 30d, 12h."),
    top: int = typer.Option(20, "--top", min=1, help="Early-warning entries shown (fleet view)."),
) -> None:
    """Check history: with --node, that node's figures per metric and its regressions; without, the fleet's
    regressions in the period and the current early-warning list, worst first."""
    from clusterctl.check.trends import fleet_trends, node_trends

    cfg = settings(ctx)
    days = parse_days(since, "--since")
    with cfg.open_store() as store:
        data = node_trends(store, node, days, metric) if node else fleet_trends(store, days, metric, top)
    cfg.emit(data, lambda console: _draw_trends(console, data))


def _draw_trends(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    if "series" in data:
        table = Table(show_edge=False, title=f"{data['node']} since {data['since_iso']}", title_justify="left")
        for column in ("metric", "rounds", "first", "last", "min", "max", "change"):
            table.add_column(column)
        for name, s in data["series"].items():
            table.add_row(Text(name), Text(str(s["rounds"])), Text(f"{s['first']:g}"), Text(f"{s['last']:g}"),
                          Text(f"{s['min']:g}"), Text(f"{s['max']:g}"), Text(s["change"]))
        console.print(table)
    if data.get("regressions"):
        table = Table(show_edge=False, title="regressions", title_justify="left")
        for column in ("when", "node", "metric", "against", "since", "detail", "action"):
            table.add_column(column, overflow="fold")
        for f in data["regressions"]:
            table.add_row(Text(f["when"]), Text(f["node"]), Text(f["metric"]), Text(f["judge"]), Text(f["since_iso"]),
                          Text(f["detail"] or ""), Text(f["remediation"] or ""))
        console.print(table)
    elif "regressions" in data:
        console.print("no regressions in the period", highlight=False, markup=False)
    if data.get("early_warning"):
        table = Table(show_edge=False, title="early warning (worst first)", title_justify="left")
        for column in ("node", "score", "why"):
            table.add_column(column, overflow="fold")
        for r in data["early_warning"]:
            table.add_row(Text(r["node"]), Text(f"{r['score']:.2f}"), Text(r["explanation"] or ""))
        console.print(table)
