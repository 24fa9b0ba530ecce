"""`clusterctl burnin`: train the Transformer on the chosen nodes, judge every node, quarantine the failed.

`clusterctl burnin [FILE] --model transformer-big --launcher slurm --nodes 'gpu[001-064]'`
runs; `clusterctl burnin release NODE` lets a quarantined node back. Exit 1 when any node
failed, 2 on bad input.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from clusterctl.cli.context import settings
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from rich.console import Console

    from clusterctl.inventory import Inventory

RUN_EPILOG = (
    "Examples:\n\n"
    "  clusterctl burnin --launcher local --nproc 2 --model transformer-tiny --steps 50\n\n"
    "  clusterctl burnin inventories/site.yaml --launcher slurm --nodes 'gpu[0001-0064]' --duration 30m "
    "--quarantine\n\n"
    "  clusterctl burnin site.yaml --launcher kubernetes --image registry/clusterctl-burnin:1 --nodes rack-a01\n\n"
    "  clusterctl burnin image build --tag registry/clusterctl-burnin:0.1.0 && clusterctl burnin image push "
    "--tag registry/clusterctl-burnin:0.1.0\n\n"
    "Exit code 1 when any node failed the burn-in."
)


class _RunByDefault(TyperGroup):
    """`clusterctl burnin [FILE] ...` runs a burn-in; `clusterctl burnin release NODE` is the one subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's vendored click.Context
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RunByDefault, help="Burn in nodes with a real training job; judge and quarantine them.",
                  no_args_is_help=False, rich_markup_mode="rich")


image_app = typer.Typer(help="The burn-in container image: build it from this release's workload, push it.",
                        no_args_is_help=True)
app.add_typer(image_app, name="image")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="burnin")


def parse_duration(text: str, option: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not match:
        raise ClusterctlError(f"{option}: {text!r} is not a duration (examples: 90s, 30m, 2h)")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if value <= 0:
        raise ClusterctlError(f"{option}: must be more than zero")
    return value


@app.command("run", epilog=RUN_EPILOG)
def run(
    ctx: typer.Context,
    file: Path = typer.Argument(None, help="The site inventory (optional for --launcher local).",
                                show_default=False),
    model: str = typer.Option("transformer-big", "--model", help="transformer-big|base|small|tiny."),
    launcher: str = typer.Option("local", "--launcher", help="local, ssh, slurm or kubernetes."),
    nodes: str = typer.Option(None, "--nodes", "-n", help="Nodes to burn in: names, hostlists, racks or groups."),
    duration: str = typer.Option(None, "--duration", help="Train this long, e.g. 30m (or use --steps)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Train this many steps."),
    nproc: int = typer.Option(None, "--nproc", min=1,
                              help="Ranks per node \\[default: GPUs per node from the inventory, else 1]; "
                                   "local: ranks in all."),
    quarantine: bool = typer.Option(False, "--quarantine", help="Drain (Slurm) or cordon+taint (Kubernetes) "
                                    "the nodes that fail."),
    quarantine_via: str = typer.Option(None, "--quarantine-via", help="slurm or kubernetes \\[default: the "
                                       "launcher's scheduler]."),
    timeout: str = typer.Option(None, "--timeout", help="Kill the job after this long \\[default: duration + 10m, "
                                "or 30m]; hung ranks fail their nodes."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads per rank (CPU runs)."),
    log_every: int = typer.Option(10, "--log-every", min=1, help="Report every this many steps."),
    checksum_every: int = typer.Option(50, "--checksum-every", min=1, help="Compare replicas every N steps."),
    stall_timeout: str = typer.Option(None, "--stall-timeout", help="A rank this long without progress reports "
                                      "where it is stuck, to pin a hang on its node \\[default: 2m]."),
    straggler_ratio: float = typer.Option(0.85, "--straggler-ratio", min=0.05, max=1.0,
                                          help="A rank slower than this fraction of its peers fails."),
    fault: str = typer.Option(None, "--fault", help="Inject a fault, e.g. slow:rank=1:factor=4 "
                              "(to prove the verdict; see workloads/transformer/faults.py)."),
    slurm_conf: Path = typer.Option(None, "--slurm-conf", envvar="SLURM_CONF", help="slurm.conf for sbatch/scontrol."),
    partition: str = typer.Option(None, "--partition", help="Slurm partition \\[default: the nodes' from the "
                                  "inventory]."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig \\[default: ~/.kube/config or "
                                    "in-cluster]."),
    context: str = typer.Option(None, "--context", help="kubeconfig context."),
    namespace: str = typer.Option("default", "--namespace", help="Kubernetes namespace for the Job."),
    image: str = typer.Option(None, "--image", help="Container image with torch and the workload (burnin image "
                              "build): kubernetes, or slurm through pyxis \\[default: the inventory's "
                              "scheduler.*.image]."),
    kube_workload: str = typer.Option("auto", "--kube-workload", help="job, jobset, or auto: a JobSet when "
                                      "the cluster serves the JobSet API, else an Indexed Job."),
    outdir: Path = typer.Option(None, "--outdir", help="Where job files and rank output go \\[default: a temp "
                                "dir]; must be shared with the nodes for slurm."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the job files and stop."),
) -> None:
    """Run the burn-in, judge every node (pass/fail with reasons), store it, and print a summary."""
    from clusterctl.burnin import image as burnin_image
    from clusterctl.burnin import launchers, selection
    from clusterctl.burnin.launchers.protocol import BurninSpec
    from clusterctl.burnin.quarantine import Schedulers
    from clusterctl.burnin.run import burn_in
    from clusterctl.burnin.verdict import Rules

    cfg = settings(ctx)
    if steps is not None and duration is not None:
        raise ClusterctlError("--steps and --duration: give one of them")
    if launcher not in launchers.NAMES:
        raise ClusterctlError(f"--launcher: unknown {launcher!r}; choose one of {', '.join(launchers.NAMES)}")
    duration_s = parse_duration(duration, "--duration") if duration is not None else None
    timeout_s = parse_duration(timeout, "--timeout") if timeout else ((duration_s or 0) + 600 if duration_s
                                                                      else 1800.0)
    inventory = _load(file, launcher)
    chosen = selection.choose_nodes(inventory, nodes)
    gpus = selection.gpus_per_node(inventory, chosen)
    via = quarantine_via or ("slurm" if launcher == "slurm" else "kubernetes" if launcher == "kubernetes" else None)
    if quarantine and via not in ("slurm", "kubernetes"):
        raise ClusterctlError("--quarantine: the local launcher has no scheduler; add --quarantine-via "
                              "slurm|kubernetes")
    options = selection.launcher_options(launcher, inventory, chosen, slurm_conf=slurm_conf, partition=partition,
                                         gpus=gpus, kubeconfig=kubeconfig, context=context, namespace=namespace,
                                         image=image, kube_workload=kube_workload)
    # In a container (pyxis) the workload is the image's, where `burnin image build` put it.
    in_image = bool(options.get("container_image"))
    spec = BurninSpec(
        run_id=secrets.token_hex(4), model=model, nodes=tuple(chosen), nproc=nproc or gpus or 1, steps=steps,
        duration_s=duration_s, timeout_s=timeout_s, threads=threads, log_every=log_every,
        checksum_every=checksum_every, fault=fault,
        python=burnin_image.PYTHON if in_image else BurninSpec.python,
        workdir=Path(burnin_image.WORKDIR) if in_image else BurninSpec.workdir, workdir_out=outdir,
        extra_env=selection.fabric_env(inventory, chosen),
        stall_timeout_s=parse_duration(stall_timeout, "--stall-timeout") if stall_timeout is not None else None)
    job = launchers.create(launcher, **options)
    if dry_run:
        files = job.render(spec)
        cfg.emit({"files": files}, lambda console: _draw_files(console, files))
        return
    reach = Schedulers(slurm_conf=str(slurm_conf) if slurm_conf else None,
                       kubeconfig=str(kubeconfig) if kubeconfig else None, context=context)
    with cfg.open_store() as store:
        report, actions = burn_in(store, job, spec, expected_nodes=job.expected_nodes(spec),
                                  world_size=job.world_size(spec), rules=Rules(straggler_ratio=straggler_ratio),
                                  inventory=str(file) if file else None, quarantine_via=via if quarantine else None,
                                  schedulers=reach, announce=cfg.note,
                                  rdma_nodes=selection.rdma_nodes(inventory, chosen))
    data = {**report.as_dict(), "quarantine": [a.as_dict() for a in actions]}
    cfg.emit(data, lambda console: _draw_report(console, data))
    if report.failed:
        raise typer.Exit(1)


def _load(file: Path | None, launcher: str) -> Inventory | None:
    if file is None:
        if launcher == "kubernetes":
            raise ClusterctlError("the kubernetes launcher needs the inventory FILE (node names and labels)")
        return None
    from clusterctl.inventory import load_inventory

    return load_inventory(file)


def _draw_files(console: Console, files: dict[str, str]) -> None:
    for name, text in files.items():
        console.rule(name)
        console.print(text, markup=False, highlight=False)


def _draw_report(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"burn-in run {data['run']} ({data['launcher']} job {data['job']}: {data['job_state']})")
    for column in ("node", "status", "tokens/s per rank (min)", "last loss", "reasons"):
        table.add_column(column)
    for node in data["nodes"]:
        metrics = node["metrics"]
        color = {"pass": "green", "fail": "red"}.get(node["status"], "yellow")
        status = f"[{color}]{node['status']}[/]"
        loss = metrics.get("loss_last")
        table.add_row(node["node"], status, f"{metrics.get('local_tokens_per_s', '-')}",
                      f"{loss:.3f}" if isinstance(loss, float) else "-", "; ".join(node["reasons"]))
    console.print(table)
    for action in data["quarantine"]:
        mark = "quarantined" if action["ok"] else "NOT quarantined"
        console.print(f"{action['node']}: {mark} via {action['via']}: {action['detail']}", highlight=False)
    warned = f", {data['warned']} with warnings" if data["warned"] else ""
    console.print(f"{data['passed']} passed{warned}, {data['failed']} did not pass")


@app.command("release")
def release(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="The quarantined node."),
    via: str = typer.Option(None, "--via", help="slurm or kubernetes \\[default: as recorded at quarantine]."),
    slurm_conf: Path = typer.Option(None, "--slurm-conf", help="slurm.conf \\[default: as recorded]."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig \\[default: as recorded]."),
    context: str = typer.Option(None, "--context", help="kubeconfig context \\[default: as recorded]."),
) -> None:
    """Let a quarantined node take jobs again: Slurm resume, or uncordon and remove the burn-in taint."""
    from clusterctl.burnin.quarantine import Schedulers
    from clusterctl.burnin.quarantine import release as do_release

    cfg = settings(ctx)
    reach = Schedulers(slurm_conf=str(slurm_conf) if slurm_conf else None,
                       kubeconfig=str(kubeconfig) if kubeconfig else None, context=context)
    with cfg.open_store() as store:
        action = do_release(node, store=store, schedulers=reach, via=via)
    cfg.emit(action.as_dict(), lambda console: console.print(f"{node}: released via {action.via}"))


@image_app.command("build")
def image_build(
    ctx: typer.Context,
    tag: str = typer.Option(None, "--tag", help="Image tag \\[default: clusterctl-burnin:VERSION]."),
    base: str = typer.Option(None, "--base", help="Base image with PyTorch \\[default: the recipe's NVIDIA PyTorch "
                             "image]."),
    engine: str = typer.Option("docker", "--engine", help="docker, podman or apptainer (a .sif for Slurm sites)."),
    context_dir: Path = typer.Option(None, "--context", help="Write the build context here and keep it \\[default: a "
                                     "temporary directory]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write the context, print the build command, build "
                                 "nothing."),
) -> None:
    """Build the burn-in image: the recipe plus the installed workloads/ package, checked by checksum."""
    import tempfile

    from clusterctl.burnin import image as burnin_image

    cfg = settings(ctx)
    tag = tag or burnin_image.DEFAULT_TAG
    with tempfile.TemporaryDirectory(prefix="clusterctl-image-") as scratch:
        where = (context_dir or Path(scratch)).absolute()
        command = burnin_image.build_command(engine, where, tag, base)
        files = burnin_image.write_context(where)
        data = {"context": str(where) if context_dir else None, "files": files, "command": command.argv,
                "cwd": str(command.cwd), "tag": tag, "built": not dry_run}
        if not dry_run:
            burnin_image.run(command)
    cfg.emit(data, lambda console: console.print(
        f"{'built' if not dry_run else 'would build'} {tag} with {len(files)} files: {' '.join(command.argv)}",
        highlight=False, markup=False))


@image_app.command("push")
def image_push(
    ctx: typer.Context,
    tag: str = typer.Option(None, "--tag", help="Image tag \\[default: clusterctl-burnin:VERSION]."),
    engine: str = typer.Option("docker", "--engine", help="docker or podman."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the push command only."),
) -> None:
    """Push the burn-in image to its registry (the tag names it: registry.example/clusterctl-burnin:0.1.0)."""
    from clusterctl.burnin import image as burnin_image

    cfg = settings(ctx)
    command = burnin_image.push_command(engine, tag or burnin_image.DEFAULT_TAG)
    if not dry_run:
        burnin_image.run(command)
    cfg.emit({"command": command.argv, "pushed": not dry_run},
             lambda console: console.print(" ".join(command.argv), highlight=False, markup=False))
