"""The rollout view: where every node of `clusterctl maintain` is, the capacity floor, and the time each node
spent in each state, read from the `maintain.*` events the rollout writes (clusterctl.maintain.ledger).

Its own router (GET /maintain, GET /api/v1/maintain) and template, rendered on the server: the page is a
snapshot an operator reloads, with no script of its own under the dashboard's Content-Security-Policy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from clusterctl import __version__
from clusterctl.dashboard.api import JSON

if TYPE_CHECKING:
    from clusterctl.inventory.site import Inventory
    from clusterctl.state.store import Store

STATES = ("draining", "forcing", "drained", "updating", "updated", "validating", "burnin", "resuming", "aborted",
          "resumed", "failed", "skipped")
"""Columns of the time table, in the order a node goes through them."""

router = APIRouter()
_templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined))


def rollout(store: Store, inventory: Inventory | None, *, now: float | None = None) -> dict[str, Any]:
    """The newest rollout as the page and the API show it."""
    from clusterctl.maintain import ledger

    now = time.time() if now is None else now
    run = store.latest_run("maintain")
    states = ledger.last_states(store)
    spent = ledger.time_in_states(store, now=now)
    fleet = set(inventory.nodes) if inventory is not None else None
    held = sorted(n for n, s in states.items() if s.state in ledger.HELD)
    flagged = sorted(f.node for f in store.flags(quarantined_only=True) if fleet is None or f.node in fleet)
    args = run.args if run is not None and isinstance(run.args, dict) else {}
    summary = run.summary if run is not None and isinstance(run.summary, dict) else {}
    allowed = summary.get("max_unavailable", args.get("allowed_unavailable"))
    unavailable = sorted(set(held) | set(flagged))
    nodes = [{**s.as_dict(), "for_s": round(now - s.since, 1), "time_in_states_s": spent.get(s.node, {})}
             for s in sorted(states.values(), key=lambda s: s.node)]
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s.state] = counts.get(s.state, 0) + 1
    return {
        "run": None if run is None else {"id": run.id, "status": run.status, "started_at": run.started_at,
                                         "finished_at": run.finished_at},
        "control": ledger.current_control(store, _start_event(store, run.id)) if run is not None else None,
        "floor": {"allowed_unavailable": allowed, "unavailable_now": len(unavailable),
                  "held_by_rollout": held, "quarantined": flagged,
                  "fleet": len(fleet) if fleet is not None else args.get("fleet"),
                  "peak_unavailable": summary.get("peak_unavailable"),
                  "broken": allowed is not None and len(unavailable) > allowed},
        "counts": dict(sorted(counts.items(), key=lambda kv: STATES.index(kv[0]) if kv[0] in STATES else 99)),
        "nodes": nodes,
    }


def _start_event(store: Store, run_id: int) -> int:
    first = store.events(0, run_id=run_id, limit=1)
    return first[0].id - 1 if first else 0


def _view(request: Request) -> dict[str, Any]:
    model = request.app.state.model
    return rollout(model.store, model.inventory)


@router.get("/api/v1/maintain", response_class=JSON, tags=["maintain"],
            summary="The newest rollout: every node's state, the capacity floor, time spent in each state")
def maintain_api(request: Request) -> Any:
    return JSON(_view(request))


@router.get("/maintain", include_in_schema=False)
def maintain_page(request: Request) -> HTMLResponse:
    view = _view(request)
    model = request.app.state.model
    site = model.inventory.site.name if model.inventory is not None else None
    return _templates.TemplateResponse(request, "maintain.html", {
        "view": view, "states": STATES, "site": site, "version": __version__, "title": "Maintenance rollout"})
