"""`clusterctl dashboard` (serve fleet health and /metrics) and `clusterctl monitor` (Redfish sweeps into telemetry).

FastAPI, uvicorn and the Redfish stack are imported inside the commands: `clusterctl --help` stays fast.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clusterctl.cli.context import Settings, settings
from clusterctl.errors import ClusterctlError

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory
    from clusterctl.redfish import BMCTarget
    from clusterctl.state.store import Store

DASHBOARD_EPILOG = (
    "Examples:\n\n"
    "  clusterctl dashboard inventories/site.yaml\n\n"
    "  clusterctl dashboard inventories/site.yaml --collect --interval 60 --metrics-open\n\n"
    "  CLUSTERCTL_DASHBOARD_TOKEN=... clusterctl dashboard --host 0.0.0.0 --port 8080"
)
MONITOR_EPILOG = (
    "Examples:\n\n"
    "  clusterctl monitor inventories/site.yaml --once\n\n"
    "  clusterctl monitor inventories/site.yaml --interval 60 --limit 'gpu[0001-0512]'\n\n"
    "Retention: raw samples for --raw-hours (24), then one 5-minute average per series, kept 90 days."
)


class DashboardError(ClusterctlError):
    """The dashboard or monitor cannot start as asked."""


def register(app: typer.Typer) -> None:
    app.command("dashboard", epilog=DASHBOARD_EPILOG)(dashboard)
    app.command("monitor", epilog=MONITOR_EPILOG)(monitor)


def dashboard(
    ctx: typer.Context,
    file: Path = typer.Argument(None, help="Inventory file: places nodes in halls and racks; needed by --collect.",
                                show_default=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless you say otherwise)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port."),
    token_file: Path = typer.Option(None, "--token-file", help="File holding the access token (else env "
                                    "CLUSTERCTL_DASHBOARD_TOKEN, else one generated and stored 0600)."),
    metrics_open: bool = typer.Option(False, "--metrics-open", help="Serve /metrics without the token."),
    collect: bool = typer.Option(False, "--collect", help="Also run the monitor sweep in the background."),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="Seconds between sweeps with --collect."),
) -> None:
    """Serve the fleet's health from the state store, live: heatmap, racks, nodes, burn-in runs, events, /metrics."""
    import uvicorn

    from clusterctl.dashboard.app import create_app
    from clusterctl.dashboard.auth import load_token

    s = settings(ctx)
    if collect and file is None:
        raise DashboardError("--collect needs the inventory FILE: it says which BMCs to sweep")
    inventory = _inventory(file) if file is not None else None
    targets = _targets(file) if collect and file is not None else []
    token = load_token(token_file)
    _check_port(host, port)
    store = s.open_store()
    stop = threading.Event()
    collector = None
    try:
        app = create_app(store, inventory, token, metrics_open=metrics_open, host=host)
        if collect:
            collector = threading.Thread(target=_collect, args=(store, targets, interval, stop),
                                         name="monitor", daemon=True)
            collector.start()
        _announce(s, host, port, token)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
                                server_header=False)
        uvicorn.Server(config).run()
    finally:
        stop.set()
        if collector is not None:
            collector.join(timeout=interval + 35)
        store.close()


def monitor(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Inventory file: the BMCs to sweep.", show_default=False),
    limit: str = typer.Option(None, "--limit", "-l", help="Hostlist/group pattern selecting inventory nodes."),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="Seconds between sweeps."),
    once: bool = typer.Option(False, "--once", help="One sweep (and compaction), then exit."),
    parallel: int = typer.Option(256, "--parallel", min=1, help="BMCs read at once."),
    timeout: float = typer.Option(30.0, "--timeout", min=1.0, help="Seconds allowed per BMC per sweep."),
    raw_hours: float = typer.Option(24.0, "--raw-hours", min=0.0, help="Keep raw samples this long, then "
                                    "5-minute averages."),
    event_days: float = typer.Option(90.0, "--event-days", min=0.0, help="Keep each node's events this long, "
                                     "then only their counts per kind (hourly)."),
    events_per_node: int = typer.Option(1000, "--events-per-node", min=0, help="Keep at most this many "
                                        "events per node, then only their counts per kind."),
) -> None:
    """Sweep every BMC's power, inlet/exhaust temperatures, fans, PSUs and GPU temperatures into telemetry."""
    from clusterctl.monitor import CompactionPolicy, watch
    from clusterctl.state.retention import EventRetention

    s = settings(ctx)
    targets = _targets(file, limit)
    policy = CompactionPolicy(raw_for_s=raw_hours * 3600)
    summaries: list[dict[str, Any]] = []

    def report(summary: Any) -> None:
        summaries.append(summary.as_dict())
        if not once:
            s.note(f"swept {summary.nodes} BMC(s): {summary.answered} answered, {summary.samples} samples, "
                   f"{summary.seconds:.1f} s")

    with s.open_store() as store:
        stop = threading.Event()
        watch(store, targets, interval=interval, stop=stop, max_sweeps=1 if once else None, parallel=parallel,
              per_bmc_timeout=timeout, policy=policy, on_sweep=report,
              events=EventRetention(keep_days=event_days, keep_per_node=events_per_node))
    if once:
        if not summaries:
            raise DashboardError(f"the sweep could not be written to the state store {s.state_url}")
        summary = summaries[0]
        s.emit(summary, lambda console: _draw_sweep(console, summary))
        if summary["errors"]:
            raise typer.Exit(1)


def _draw_sweep(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(f"Swept {summary['nodes']} BMC(s) in {summary['seconds']} s: {summary['answered']} answered, "
                  f"{summary['samples']} samples written.", highlight=False, markup=False)
    if summary["errors"]:
        table = Table(title="unreachable", title_justify="left")
        table.add_column("BMC")
        table.add_column("error")
        for bmc, error in summary["errors"].items():
            table.add_row(Text(bmc), Text(error))
        console.print(table)


def _inventory(file: Path) -> Inventory:
    from clusterctl.inventory import load_inventory

    if not file.is_file():
        raise DashboardError(f"{file}: no such inventory file")
    return load_inventory(file)


def _targets(file: Path, limit: str | None = None) -> list[BMCTarget]:
    from clusterctl.redfish.target import targets_from_inventory

    if not file.is_file():
        raise DashboardError(f"{file}: no such inventory file")
    return targets_from_inventory(file, limit)


def _collect(store: Store, targets: list[BMCTarget], interval: float, stop: threading.Event) -> None:
    from clusterctl.monitor import watch

    watch(store, targets, interval=interval, stop=stop)


def _check_port(host: str, port: int) -> None:
    """Fail with one line before uvicorn would log a traceback-like error and exit."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _announce(s: Settings, host: str, port: int, token: Any) -> None:
    shown = f"[{host}]" if ":" in host else host
    from clusterctl.state.connect import display_url

    s.note(f"clusterctl dashboard on http://{shown}:{port}/ (store {display_url(s.state_url)})")
    if token.generated:
        # Printed once, on the terminal only: the access token is what a browser needs at /login.
        typer.echo(f"Dashboard token (shown once; stored 0600 in {token.source.split(':', 1)[1]}): {token.value}",
                   err=True)
    else:
        s.note(f"token from {token.source}")
    from clusterctl.dashboard.auth import is_loopback

    if not is_loopback(host):
        s.note("warning: listening beyond loopback over plain HTTP; put TLS (a reverse proxy) in front "
               "(browsers keep the login cookie, marked Secure, over HTTPS only)")
