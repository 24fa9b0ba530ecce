"""`clusterctl status` and `clusterctl events`: read-only views of the state store."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from clusterctl.cli.context import settings
from clusterctl.errors import SelectionError, StateError

if TYPE_CHECKING:
    from rich.console import Console

    from clusterctl.state.records import Event
    from clusterctl.state.store import Store

STATUSES = ("pending", "running", "done", "failed", "skipped")

STATUS_EPILOG = (
    "Examples:\n\n"
    "  clusterctl status\n\n"
    "  clusterctl status --run 12 -o json\n\n"
    "Exit code 1 when any node is failed in a stage."
)
EVENTS_EPILOG = (
    "Examples:\n\n"
    "  clusterctl events --node 'gpu[001-004]' --stage bios --limit 20\n\n"
    "  clusterctl events --run 12 --follow\n\n"
    "  clusterctl events --since 1500 --follow --follow-timeout 60 -o json"
)


def register(app: typer.Typer) -> None:
    app.command("status", epilog=STATUS_EPILOG)(status)
    app.command("events", epilog=EVENTS_EPILOG)(events)


def status(
    ctx: typer.Context,
    run: int = typer.Option(None, "--run", min=1, help="Only nodes whose latest state was set by this run."),
) -> None:
    """Per stage: how many nodes are pending, running, done, failed or skipped, why nodes failed, and which
    controller works on which nodes now."""
    from clusterctl.inventory.hostlist import fold
    from clusterctl.state.node_leases import controllers

    cfg = settings(ctx)
    with cfg.open_store() as store:
        shown_run = _require_run(store, run) if run is not None else store.latest_run()
        summary = store.stage_summary(run)
        failing = store.failing(run)
        quarantined = store.flags(quarantined_only=True)
        data = {
            "store": store.url,
            "run": shown_run.as_dict() if shown_run else None,
            "stages": {
                stage: {**{s: counts.get(s, 0) for s in STATUSES}, "total": sum(counts.values())}
                for stage, counts in summary.items()
            },
            "failing": [f._asdict() for f in failing],
            "quarantined": [f.as_dict() for f in quarantined],
            "controllers": [{**c, "nodes": fold(c["nodes"]), "holding": len(c["nodes"])}
                            for c in controllers(store)],
        }
    cfg.emit(data, lambda console: _draw_status(console, data, run))
    if failing:
        raise typer.Exit(1)


def events(
    ctx: typer.Context,
    node: str = typer.Option(None, "--node", "-n", help="Only these nodes: a name or hostlist (gpu[01-08])."),
    stage: str = typer.Option(None, "--stage", help="Only this stage."),
    run: int = typer.Option(None, "--run", min=1, help="Only this run."),
    kind: str = typer.Option(None, "--kind", help="Only this kind of event, e.g. stage.failed."),
    since: int = typer.Option(None, "--since", min=0, help="Only events after this event id."),
    limit: int = typer.Option(
        50, "--limit", min=1, help="At most this many: the newest ones, or the first after --since."
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Then keep printing new events until Ctrl-C."),
    follow_timeout: float = typer.Option(
        None, "--follow-timeout", min=0, help="Stop following after this many seconds (implies --follow)."
    ),
    compact: bool = typer.Option(False, "--compact", help="Apply the retention policy now: each node keeps its "
                                 "newest --keep-per-node events younger than --keep-days; older ones become counts."),
    keep_days: float = typer.Option(90.0, "--keep-days", min=0, help="With --compact."),
    keep_per_node: int = typer.Option(1000, "--keep-per-node", min=0, help="With --compact."),
) -> None:
    """The event log, oldest first; --follow then prints new events as they come (-o json: JSON lines)."""
    from clusterctl.state.events import follow as follow_events

    cfg = settings(ctx)
    if compact:
        from clusterctl.state.retention import EventRetention, compact_events

        with cfg.open_store() as store:
            done = compact_events(store, EventRetention(keep_days=keep_days, keep_per_node=keep_per_node)).as_dict()
        cfg.emit(done, lambda console: console.print(f"compacted {done['deleted']} event(s) of {done['nodes']} "
                                                     "node(s) into counts"))
        return
    nodes = _expand(node) if node else None
    following = follow or follow_timeout is not None
    with cfg.open_store() as store:
        if run is not None:
            _require_run(store, run)
        filters: dict[str, Any] = {"node": nodes, "stage": stage, "run_id": run, "kind": kind}
        # Taken before the query: an event committed in between is then followed, not skipped.
        head = since if since is not None else store.last_event_id() if following else 0
        found = store.events(since or 0, limit=limit, newest=since is None, **filters)
        if not following:
            cfg.emit([e.as_dict() for e in found], lambda _console: _print_events(found, cfg.json))
            if not found and not cfg.json:
                cfg.note("No events match.")
            return
        _print_events(found, cfg.json)
        after = found[-1].id if found else head
        try:
            for event in follow_events(store, after_id=after, timeout=follow_timeout, **filters):
                _print_events([event], cfg.json)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a follow ends


def _require_run(store: Store, run_id: int) -> Any:
    found = store.run(run_id)
    if found is None:
        latest = store.latest_run()
        hint = f"the latest is {latest.id}" if latest else "no runs are recorded yet"
        raise StateError(f"no run {run_id} in the state store {store.url} ({hint})")
    return found


def _expand(hostlist: str) -> list[str]:
    from clusterctl.inventory.hostlist import HostlistError, expand

    try:
        return expand(hostlist)
    except HostlistError as exc:
        raise SelectionError(f"--node: {exc}") from exc


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _print_events(found: list[Event], as_json: bool) -> None:
    """One line per event, flushed at once so `--follow | grep` sees lines as they come."""
    for e in found:
        if as_json:
            line = json.dumps(e.as_dict(), default=str)
        else:
            where = " ".join(x for x in (e.node or "-", e.stage or "-"))
            run = f"run {e.run_id}" if e.run_id is not None else "-"
            payload = "" if e.payload is None else " " + json.dumps(e.payload, default=str, sort_keys=True)
            line = f"#{e.id:<6} {_when(e.ts)}  {run:<8} {where:<24} {e.kind}{payload}"
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _draw_status(console: Console, data: dict[str, Any], run_filter: int | None) -> None:
    from rich.table import Table

    from clusterctl.inventory.hostlist import fold

    run = data["run"]
    if run:
        label = "Run" if run_filter is not None else "Latest run"
        ended = f", finished {_when(run['finished_at'])}" if run["finished_at"] else ""
        started = _when(run["started_at"])
        console.print(
            f"{label} {run['id']} ({run['kind']}): {run['status']}, started {started}{ended}",
            highlight=False, markup=False,
        )
    if not data["stages"]:
        console.print("No node stages recorded" + (f" for run {run_filter}." if run_filter else " yet."),
                      markup=False)
        _draw_controllers(console, data)  # a first run working on its nodes has none recorded yet
        return
    table = Table(title=None, show_edge=False)
    table.add_column("stage")
    for column in (*STATUSES, "total"):
        table.add_column(column, justify="right")
    for stage, counts in data["stages"].items():
        cells = [str(counts[s]) if counts[s] else "·" for s in STATUSES]
        if counts["failed"]:
            cells[STATUSES.index("failed")] = f"[red]{counts['failed']}[/red]"
        table.add_row(_plain(stage), *cells, str(counts["total"]))
    console.print(table)
    if data["failing"]:
        grouped: dict[tuple[str, str], list[str]] = {}
        for f in data["failing"]:
            grouped.setdefault((f["stage"], f["reason"] or "no reason recorded"), []).append(f["node"])
        failed = Table(title="failing nodes", show_edge=False, title_justify="left")
        for column in ("stage", "nodes", "reason"):
            failed.add_column(column)
        for (stage, reason), nodes in grouped.items():
            failed.add_row(_plain(stage), _plain(fold(nodes)), _plain(reason))
        console.print(failed)
    if data["quarantined"]:
        names = fold(q["node"] for q in data["quarantined"])
        console.print(f"Quarantined: {names}", markup=False, highlight=False)
    _draw_controllers(console, data)


def _draw_controllers(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    if data["controllers"]:
        held = Table(title="controllers", show_edge=False, title_justify="left")
        for column in ("controller", "job", "run", "heartbeat", "nodes"):
            held.add_column(column)
        for c in data["controllers"]:
            held.add_row(_plain(c["controller"]), c["job"], str(c["run"] or "-"), _when(c["heartbeat_at"]),
                         _plain(f"{c['holding']}: {c['nodes']}" if c["holding"] else "0"))
        console.print(held)


def _plain(text: str) -> Any:
    """Node names and reasons are data, not rich markup: gpu[01-04] must print as typed."""
    from rich.text import Text

    return Text(text)
