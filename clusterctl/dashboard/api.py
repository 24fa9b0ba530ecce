"""The JSON API under /api/v1: the same read model the pages draw, one endpoint per view.

Every endpoint is a plain `def`: the store is synchronous, so FastAPI runs them in its thread
pool and a slow query never stalls the event loop that serves everyone else.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from clusterctl.dashboard import schemas
from clusterctl.dashboard.views import ReadModel

MAX_ID = 2**62  # beyond any id the store hands out, and inside SQLite's 64-bit integers


class JSON(JSONResponse):
    """Compact `json.dumps`, and returned as is: FastAPI's encoder would walk every value of a
    12,500-node fleet again (a quarter of a second)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=str).encode()


class ErrorBody(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


router = APIRouter(
    prefix="/api/v1",
    default_response_class=JSON,
    tags=["fleet"],
    responses={401: _error("No or wrong token."), 503: _error("The state store cannot be read.")},
)


def _ok(model: Any, not_found: bool = False) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {200: {"model": model, "description": "OK"}}
    if not_found:
        answers[404] = _error("The inventory and the store do not know it.")
    return answers


NodeName = Annotated[str, Path(min_length=1, max_length=255, description="Node name, as in the inventory.")]


def _model(request: Request) -> ReadModel:
    return request.app.state.model  # type: ignore[no-any-return]


@router.get("/fleet", responses=_ok(schemas.FleetOverview),
            summary="Every node's state, grouped by hall and rack; counts; the current run's progress")
def fleet(request: Request) -> JSON:
    return JSON(_model(request).fleet())


@router.get("/racks/{rack}", responses=_ok(schemas.Rack, not_found=True),
            summary="A rack: power draw against its budget, temperatures, node states")
def rack(request: Request, rack: Annotated[str, Path(min_length=1, max_length=255)]) -> JSON:
    return JSON(_model(request).rack(rack))


@router.get("/nodes/{node}", responses=_ok(schemas.Node, not_found=True),
            summary="A node: inventory facts, stages, checks, firmware, burn-in, events")
def node(request: Request, node: NodeName) -> JSON:
    return JSON(_model(request).node(node))


@router.get("/nodes/{node}/telemetry", responses=_ok(schemas.Telemetry),
            summary="One telemetry metric of a node over time, one series per label set")
def telemetry(
    request: Request,
    node: NodeName,
    metric: Annotated[str, Query(min_length=1, max_length=128)],
    since: Annotated[float | None, Query(allow_inf_nan=False, description="Epoch seconds.")] = None,
) -> JSON:
    return JSON(_model(request).telemetry(node, metric, since))


@router.get("/runs", responses=_ok(list[schemas.Run]), summary="The newest runs")
def runs(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JSON:
    return JSON(_model(request).runs(limit))


@router.get("/runs/{run_id}/burnin", responses=_ok(schemas.Burnin, not_found=True),
            summary="A burn-in run: verdicts, throughput distribution, loss curves")
def burnin(request: Request, run_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> JSON:
    return JSON(_model(request).burnin_run(run_id))


@router.get("/events", responses=_ok(schemas.Events),
            summary="The event log: the newest events, or those after an id (for live updates)")
def events(
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    node: Annotated[str | None, Query(max_length=255)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    run: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JSON:
    return JSON(_model(request).events(after, node=node or None, kind=kind or None, stage=stage or None, run_id=run,
                                  limit=limit))
