"""`clusterctl inventory ...`: check, show and export the site inventory."""

from __future__ import annotations

from pathlib import Path

import typer

from clusterctl.cli.context import settings

app = typer.Typer(help="Check, show and export the site inventory.", no_args_is_help=True)

FILE = typer.Argument(..., help="The inventory YAML file.", show_default=False)
LIMIT = typer.Option(
    None,
    "--limit",
    "-l",
    metavar="PATTERN",
    help="Only these nodes: comma-separated hostlists of node, rack or group names.",
)
OUT = typer.Option(None, "--out", help="Write here instead of stdout.", show_default=False)
FORMAT = typer.Option(
    None, "--format", help="yaml or json [default: from --out's suffix, else yaml]", show_default=False
)


@app.command(epilog="Example: clusterctl inventory check inventories/site.yaml --output json")
def check(ctx: typer.Context, file: Path = FILE) -> None:
    """Validate an inventory and report every problem at once (exit 2 if there are errors)."""
    from clusterctl.inventory.load import check_inventory

    s = settings(ctx)
    inventory, errors, warnings = check_inventory(file)
    counts = inventory.counts() if inventory else {"nodes": 0, "gpus": 0, "racks": 0}
    result = {
        "file": str(file),
        "valid": not errors,
        **counts,
        "site": inventory.site.name if inventory else None,
        "groups": {g: len(n) for g, n in inventory.groups.items()} if inventory else {},
        "errors": [p.as_dict() for p in errors],
        "warnings": [p.as_dict() for p in warnings],
    }

    def draw(console) -> None:  # noqa: ANN001 - rich Console, imported lazily
        for problem in errors + warnings:
            s.err.print(problem.render(), highlight=False, markup=False, soft_wrap=True)
        if inventory is None:
            s.err.print(f"{file}: {len(errors)} error(s), {len(warnings)} warning(s)", highlight=False)
            return
        groups = ", ".join(f"{g} {len(n)}" for g, n in inventory.groups.items())
        console.print(
            f"{file}: site {inventory.site.name}: {counts['nodes']} nodes ({groups}), "
            f"{counts['gpus']} GPUs, {counts['racks']} racks; {len(warnings)} warning(s)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    s.emit(result, draw)
    if errors:
        raise typer.Exit(2)


@app.command(epilog="Example: clusterctl inventory show inventories/site.yaml --limit 'a01-r[01-02],login'")
def show(ctx: typer.Context, file: Path = FILE, limit: str = LIMIT) -> None:
    """List nodes with their group, role, rack, BMC, SSH host and GPUs."""
    from clusterctl.inventory.load import load_inventory

    s = settings(ctx)
    nodes = load_inventory(file).select(limit)
    rows = [node.summary() for node in nodes]

    def draw(console) -> None:  # noqa: ANN001
        cells = [
            (
                r["name"],
                r["group"],
                r["role"],
                r["rack"],
                r["bmc"],
                r["host"],
                f"{r['gpus']}x {r['gpu_model']}" if r["gpus"] else "-",
            )
            for r in rows
        ]
        headers = ("NAME", "GROUP", "ROLE", "RACK", "BMC", "HOST", "GPUS")
        # Columns as wide as their widest cell, so names are never cut, even in a pipe; rows are
        # written as plain text because a rich Table takes seconds for 12,500 rows.
        widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]

        def line(values: tuple[str, ...]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        console.print(line(headers), style="bold", highlight=False, markup=False, soft_wrap=True)
        console.file.write("".join(line(c) + "\n" for c in cells))
        console.file.flush()

    s.emit(rows, draw)


@app.command(
    "export-ansible",
    epilog="Example: clusterctl inventory export-ansible inventories/site.yaml --out hosts.yaml && "
    "ansible-inventory -i hosts.yaml --graph",
)
def export_ansible(
    ctx: typer.Context,
    file: Path = FILE,
    out: Path = OUT,
    fmt: str = FORMAT,
    limit: str = LIMIT,
) -> None:
    """Write an Ansible inventory: hosts grouped by rack, role, group and GPU model; no secrets."""
    from clusterctl.errors import ClusterctlError
    from clusterctl.inventory.export_ansible import render
    from clusterctl.inventory.load import load_inventory

    chosen = (fmt or ("json" if out and out.suffix == ".json" else "yaml")).lower()
    if chosen not in ("yaml", "json"):
        raise ClusterctlError(f"--format: expected yaml or json, got {fmt!r}")
    inventory = load_inventory(file)
    text = render(inventory, chosen, inventory.select(limit) if limit else None)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ClusterctlError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    settings(ctx).note(f"wrote {out} ({len(inventory.select(limit))} hosts)")
