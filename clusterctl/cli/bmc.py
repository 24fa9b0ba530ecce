"""`clusterctl bmc ...`: read and drive BMCs over Redfish, for one ad hoc BMC or an inventory selection.

Thin by design: pick targets, run one Redfish operation per BMC through `run_fleet`, draw the
results. A BMC that fails is a row with its error and makes the exit code 1; it never stops the rest.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl import eventloop
from clusterctl.cli.context import Settings, settings
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from rich.console import Console

    from clusterctl.fanout import TargetResult
    from clusterctl.redfish import BMCTarget, RedfishClient

app = typer.Typer(
    help="Read and drive BMCs over Redfish: inventory, firmware, BIOS, telemetry, logs, power.",
    no_args_is_help=True,
)

PROGRESS_FROM = 20  # a progress bar below this many BMCs is noise

FILE = typer.Argument(None, help="Inventory file; omit with --target.", show_default=False)
LIMIT = typer.Option(None, "--limit", "-l", help="Hostlist/group pattern selecting inventory nodes.")
TARGET = typer.Option(None, "--target", help="One BMC, ad hoc: https://HOST[:PORT].")
USER = typer.Option("root", "--user", help="BMC user for --target.")
PASSWORD_ENV = typer.Option(
    "BMC_PASSWORD", "--password-env", help="Environment variable holding the --target password."
)
CA = typer.Option(None, "--ca", help="CA bundle (PEM) that signed the --target certificate.")
INSECURE = typer.Option(False, "--insecure", help="Skip TLS verification for --target (lab use only).")
VENDOR = typer.Option("redfish", "--vendor", help="redfish (generic DMTF) or idrac (Dell extensions).")
PARALLEL = typer.Option(256, "--parallel", min=1, help="BMCs worked on at once.")
ATTR = typer.Option(None, "--attr", help="Only these attributes (repeatable).")
ATTEMPTS = typer.Option(5, "--attempts", min=1, max=20, help="Tries per request (busy or unreachable BMC).")
TIMEOUT = typer.Option(300.0, "--timeout", min=1.0, help="Seconds allowed per BMC.")


class BadTargetOptions(ClusterctlError):
    """The BMC selection options contradict each other or are incomplete."""


def _targets(
    file: Path | None,
    limit: str | None,
    target: str | None,
    user: str,
    password_env: str,
    ca: Path | None,
    insecure: bool,
    vendor: str,
) -> list[BMCTarget]:
    from clusterctl.redfish.target import target_from_url, targets_from_inventory

    if file is not None and target is not None:
        raise BadTargetOptions("give an inventory FILE or --target, not both")
    if file is not None:
        if not file.is_file():
            raise BadTargetOptions(f"{file}: no such inventory file")
        return targets_from_inventory(file, limit)
    if target is None:
        raise BadTargetOptions("no BMC given: pass an inventory FILE (with --limit) or --target https://HOST")
    password = os.environ.get(password_env)
    if not password:
        raise BadTargetOptions(f"--password-env {password_env}: the environment variable is not set or empty")
    return [target_from_url(target, user=user, password=password, ca=ca, insecure=insecure, vendor=vendor)]


@dataclass(frozen=True)
class BMCOptions:
    """The options every `bmc` command shares: which BMCs, and how hard to push them."""

    file: Path | None
    limit: str | None
    target: str | None
    user: str
    password_env: str
    ca: Path | None
    insecure: bool
    vendor: str
    parallel: int
    timeout: float
    attempts: int

    def targets(self) -> list[BMCTarget]:
        return _targets(self.file, self.limit, self.target, self.user, self.password_env, self.ca, self.insecure,
                        self.vendor)

    def run(self, s: Settings, op: Callable[[RedfishClient], Awaitable[Any]],
            targets: list[BMCTarget] | None = None, *, spread: bool = False) -> list[TargetResult[Any]]:
        """`op` on every BMC at once (bounded), with a progress bar when the fleet is large.

        `spread`: a read-only sweep whose `op` is module-level, worth spreading over processes
        when the fleet is large enough to keep more than one core busy (`auto_processes`).
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from clusterctl.redfish import RetryPolicy, run_fleet
        from clusterctl.redfish.processes import auto_processes

        targets = self.targets() if targets is None else targets
        retry = RetryPolicy(attempts=self.attempts)
        processes = auto_processes(len(targets)) if spread else 1  # --parallel is then split among them

        async def go(on_done: Callable[[Any], None] | None) -> list[TargetResult[Any]]:
            return await run_fleet(targets, op, max_bmcs=self.parallel, per_bmc_timeout=self.timeout, retry=retry,
                                   on_done=on_done, processes=processes)

        if len(targets) <= PROGRESS_FROM or s.verbosity < 0:
            return eventloop.run(go(None))
        columns = (TextColumn("BMCs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=s.err, transient=True) as progress:
            bar = progress.add_task("bmc", total=len(targets))
            return eventloop.run(go(lambda _r: progress.advance(bar)))


def _shared_options(
    file: Path = FILE,
    limit: str = LIMIT,
    target: str = TARGET,
    user: str = USER,
    password_env: str = PASSWORD_ENV,
    ca: Path = CA,
    insecure: bool = INSECURE,
    vendor: str = VENDOR,
    parallel: int = PARALLEL,
    timeout: float = TIMEOUT,
    attempts: int = ATTEMPTS,
) -> BMCOptions:
    return BMCOptions(file, limit, target, user, password_env, ca, insecure, vendor, parallel, timeout, attempts)


@functools.cache
def _shared() -> typer.core.TyperCommand:
    """The shared options, made by Typer from `_shared_options` like any command's: one declaration for all."""
    options = typer.Typer(add_completion=False)
    options.command()(_shared_options)
    command = typer.main.get_command(options)
    assert isinstance(command, typer.core.TyperCommand)
    return command


class BMCCommand(typer.core.TyperCommand):
    """A `bmc` command: its own parameters, from its signature, plus the shared ones, which reach it as
    one `BMCOptions` (`bmc_options`). Its own arguments (power's ACTION) come before the shared FILE."""

    def __init__(self, *, params: list[Any], **kwargs: Any) -> None:
        arguments = [p for p in params if isinstance(p, typer.core.TyperArgument)]
        options = [p for p in params if not isinstance(p, typer.core.TyperArgument)]
        super().__init__(params=[*arguments, *_shared().params, *options], **kwargs)

    def invoke(self, ctx: Any) -> Any:
        shared = _shared()
        assert shared.callback is not None
        ctx.meta[OPTIONS] = shared.callback(**{p.name: ctx.params.pop(p.name) for p in shared.params if p.name})
        return super().invoke(ctx)


OPTIONS = "clusterctl.cli.bmc.options"


def bmc_options(ctx: typer.Context) -> BMCOptions:
    options: BMCOptions = ctx.meta[OPTIONS]
    return options


def _finish(s: Settings, results: list[TargetResult[Any]], draw: Callable[[Console], None]) -> None:
    s.emit([r.as_dict("bmc") for r in results], draw)
    failed = [r for r in results if not r.ok]
    if failed:
        if not s.json:
            s.note(f"{len(failed)} of {len(results)} BMC(s) failed")
        raise typer.Exit(1)


def _errors_table(console: Console, results: list[TargetResult[Any]]) -> None:
    from rich.table import Table

    failed = [r for r in results if not r.ok]
    if not failed:
        return
    table = Table(title="failed", title_justify="left")
    for col in ("BMC", "error"):
        table.add_column(col)
    for r in failed:
        table.add_row(r.target, f"{r.error_type}: {r.error}")
    console.print(table)


def _table(console: Console, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    table = Table()
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def _report(ctx: typer.Context, op: Callable[[RedfishClient], Awaitable[Any]], columns: list[str],
            rows_of: Callable[[Any], list[list[Any]]], targets: list[BMCTarget] | None = None, *,
            spread: bool = False) -> None:
    """`op` on every BMC, then one table of `rows_of` each answer (the BMC's name first) and one of failures."""
    s = settings(ctx)
    results = bmc_options(ctx).run(s, op, targets, spread=spread)

    def draw(console: Console) -> None:
        _table(console, ["BMC", *columns], [[r.target, *row] for r in results if r.ok for row in rows_of(r.value)])
        _errors_table(console, results)

    _finish(s, results, draw)


# -- commands ---------------------------------------------------------------------------------


@app.command(cls=BMCCommand,
             epilog="Example: clusterctl bmc show --target https://10.0.0.5 --user root --ca site-ca.pem")
def show(
    ctx: typer.Context,
) -> None:
    """What each BMC says its server is: model, serial, power, health, BIOS and BMC firmware."""
    from clusterctl.redfish.resources.managers import server_summary

    fields = ("model", "serial", "power_state", "health", "bios_version", "bmc_firmware", "cpus", "memory_gib",
              "boot_override")
    columns = ["model", "serial", "power", "health", "BIOS", "BMC fw", "CPUs", "mem GiB", "boot override"]
    _report(ctx, server_summary, columns, lambda v: [[v[f] for f in fields]] if v else [])



@app.command(cls=BMCCommand,
             epilog="Example: clusterctl bmc firmware inventories/site.yaml --limit 'a01-r01-[01-08]'")
def firmware(
    ctx: typer.Context,
) -> None:
    """Installed firmware components and versions (UpdateService FirmwareInventory)."""
    from clusterctl.redfish.resources.update import firmware_inventory

    async def op(client: RedfishClient) -> list[dict[str, Any]]:
        return [c.summary() for c in await firmware_inventory(client)]

    _report(ctx, op, ["component", "version", "updateable", "health"],
            lambda v: [[c["name"], c["version"], c["updateable"], c["health"]] for c in v or []])



@app.command(cls=BMCCommand,
             epilog="Example: clusterctl bmc bios --target https://10.0.0.5 --attr ProcTurboMode --attr SysProfile")
def bios(
    ctx: typer.Context,
    attr: list[str] = ATTR,
) -> None:
    """Current BIOS attributes and the changes pending in the settings object."""
    from clusterctl.redfish.resources.bios import bios_view

    wanted = set(attr or [])
    _report(ctx, lambda client: bios_view(client, wanted), ["attribute", "current", "pending"],
            lambda v: [[k, current, v["pending"].get(k)] for k, current in sorted(v["attributes"].items())])



@app.command(cls=BMCCommand,
             epilog="Example: clusterctl bmc telemetry inventories/site.yaml --limit a01 -o json")
def telemetry(
    ctx: typer.Context,
) -> None:
    """Power draw and limit, inlet/exhaust temperatures, PSU and fan health, per chassis."""
    columns = ["chassis", "power W", "limit W", "inlet °C", "exhaust °C", "PSUs OK", "min fan RPM", "fans not OK"]
    _report(ctx, telemetry_of, columns, lambda v: [_chassis_row(t) for t in v or []], spread=True)


async def telemetry_of(client: RedfishClient) -> list[dict[str, Any]]:
    """One BMC's telemetry as plain data; module-level, so that it crosses to run_fleet's worker processes."""
    from clusterctl.redfish.resources.telemetry import node_telemetry

    return [t.model_dump() for t in await node_telemetry(client)]


def _chassis_row(t: dict[str, Any]) -> list[Any]:
    psus_ok = sum(1 for p in t["psus"] if p["health"] == "OK")
    rpms = [f["rpm"] for f in t["fans"] if f["rpm"] is not None]
    bad_fans = sum(1 for f in t["fans"] if f["health"] not in ("OK", None))
    return [t["chassis"], t["power_watts"], t["power_limit_watts"], t["inlet_c"], t["exhaust_c"],
            f"{psus_ok}/{len(t['psus'])}", f"{min(rpms):.0f}" if rpms else None, bad_fans]



@app.command(cls=BMCCommand,
             epilog="Example: clusterctl bmc logs --target https://10.0.0.5 --entries 50")
def logs(
    ctx: typer.Context,
    service: str = typer.Option(None, "--service", help="Log service Id (e.g. Sel, Lclog); default: all."),
    entries: int = typer.Option(20, "--entries", min=1, max=10000, help="Entries per log service."),
) -> None:
    """Recent entries of the system and manager log services (SEL, lifecycle log)."""
    from clusterctl.redfish.resources.logs import recent_entries

    _report(ctx, lambda client: recent_entries(client, service=service, limit=entries),
            ["log", "created", "severity", "id", "message"],
            lambda v: [[e["service"], e["created"], e["severity"], e["message_id"], e["message"]] for e in v or []])



@app.command(cls=BMCCommand,
             epilog="Example: clusterctl bmc power cycle inventories/site.yaml --limit a01-r01-03 --yes")
def power(
    ctx: typer.Context,
    action: str = typer.Argument(..., help="on, off or cycle."),
    yes: bool = typer.Option(False, "--yes", help="Needed to power off or cycle more than one server."),
) -> None:
    """Power servers on, off (forced) or cycle them, using the ResetType each BMC allows."""
    from clusterctl.redfish.resources.systems import switch_power

    if action not in ("on", "off", "cycle"):
        raise BadTargetOptions(f"power {action!r}: use on, off or cycle")
    targets = bmc_options(ctx).targets()
    if action != "on" and len(targets) > 1 and not yes:
        raise BadTargetOptions(f"power {action} of {len(targets)} servers needs --yes")
    _report(ctx, lambda client: switch_power(client, action), ["power before", "sent"],
            lambda v: [[v["before"], v["reset_type"]]], targets)


scp_app = typer.Typer(help="Dell Server Configuration Profiles: export a server's settings, import them on others.",
                      no_args_is_help=True)
app.add_typer(scp_app, name="scp")
COMPONENTS = typer.Option("ALL", "--components", help="Comma-separated SCP components: ALL, BIOS, IDRAC, NIC, "
                          "RAID, ... (Dell's ShareParameters.Target).")


def _components(text: str) -> list[str]:
    from clusterctl.redfish.oem.idrac import scp_components

    return scp_components([c.strip() for c in text.split(",") if c.strip()])


@scp_app.command("export", cls=BMCCommand,
                 epilog="Example: clusterctl bmc scp export site.yaml --limit gpu0001 --components BIOS --outdir scp/")
def scp_export(
    ctx: typer.Context,
    components: str = COMPONENTS,
    outdir: Path = typer.Option(Path("."), "--outdir", help="One <BMC>.json profile per BMC goes here."),
) -> None:
    """Export each iDRAC's profile (local export, JSON) into a file named after its BMC."""
    from clusterctl.redfish.oem.idrac import export_scp_and_wait
    from clusterctl.state.private import private_file

    chosen = _components(components)
    if not outdir.is_dir():
        raise BadTargetOptions(f"--outdir {outdir}: no such directory")

    async def op(client: RedfishClient) -> dict[str, Any]:
        profile = await export_scp_and_wait(client, components=chosen)
        # A profile holds the iDRAC's settings, user names among them: private to the operator.
        path = private_file(outdir / f"{_file_safe(client.name)}.json")
        path.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n")
        found = (profile.get("SystemConfiguration") or {}).get("Components") or []
        return {"file": str(path), "components": len(found)}

    _report(ctx, op, ["profile", "components"], lambda v: [[v["file"], v["components"]]])


@scp_app.command("import", cls=BMCCommand,
                 epilog="Example: clusterctl bmc scp import site.yaml --limit rack-a01 --profile bios.json "
                        "--components BIOS --yes")
def scp_import(
    ctx: typer.Context,
    profile: Path = typer.Option(..., "--profile", help="The profile (JSON) to import, e.g. one `scp export` wrote."),
    components: str = COMPONENTS,
    shutdown: str = typer.Option("Graceful", "--shutdown", help="Graceful, Forced or NoReboot (apply at the "
                                 "next reboot)."),
    yes: bool = typer.Option(False, "--yes", help="Needed to import into more than one server."),
) -> None:
    """Import a profile into each iDRAC and wait for its job: the host reboots unless --shutdown NoReboot."""
    from clusterctl.redfish.oem.idrac import import_scp_and_wait

    chosen = _components(components)
    if shutdown not in ("Graceful", "Forced", "NoReboot"):
        raise BadTargetOptions(f"--shutdown {shutdown!r}: use Graceful, Forced or NoReboot")
    try:
        text = profile.read_text()
        json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadTargetOptions(f"--profile {profile}: not a readable JSON profile ({type(exc).__name__})") from None
    targets = bmc_options(ctx).targets()
    if len(targets) > 1 and not yes:
        raise BadTargetOptions(f"importing a profile into {len(targets)} servers needs --yes")

    async def op(client: RedfishClient) -> dict[str, Any]:
        job = await import_scp_and_wait(client, text, components=chosen, shutdown=shutdown)  # type: ignore[arg-type]
        return job.summary()

    _report(ctx, op, ["job", "state", "message"], lambda v: [[v["id"], v["state"], v["message"]]], targets)


def _file_safe(name: str) -> str:
    """A BMC's name as a file name: host:port and IPv6 brackets become plain characters."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
