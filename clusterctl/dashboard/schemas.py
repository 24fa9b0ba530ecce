"""The shapes /api/v1 answers with, for the OpenAPI document (and so for schemathesis to hold the API to).

Documentation only: the endpoints serialise the read model's plain dicts with `json.dumps`, because
validating 12,500 heatmap cells through these models would cost more than the query. The contract
test (tests/dashboard/test_dashboard_openapi.py) checks that what is sent matches what is written here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Run(BaseModel):
    id: int
    kind: str
    status: str
    started_at: float
    finished_at: float | None
    inventory: str | None
    args: Any
    summary: Any


class Event(BaseModel):
    id: int
    ts: float
    run_id: int | None
    node: str | None
    stage: str | None
    kind: str
    payload: Any


class Flag(BaseModel):
    node: str
    quarantined: bool
    reason: str | None
    since: float
    source: str | None


class RackCells(BaseModel):
    name: str
    power_budget_w: int | None
    nodes: list[tuple[str, str, str | None]] = Field(description="[node, state, stage] per node, in rack order.")


class Hall(BaseModel):
    name: str
    racks: list[RackCells]


class Controller(BaseModel):
    controller: str = Field(description="host:pid")
    job: str
    run: int | None
    heartbeat_at: float
    holding: int
    nodes: str = Field(description="The nodes it holds, as a hostlist.")


class FleetOverview(BaseModel):
    generated_at: float
    total: int
    counts: dict[str, int] = Field(description="Nodes per state: quarantined, fail, provisioning, warn, ready...")
    run: Run | None
    progress: dict[str, dict[str, int]] | None = Field(description="{stage: {status: nodes}} of the current run.")
    halls: list[Hall]
    last_event_id: int
    controllers: list[Controller] = Field(description="Controllers working on the store now, and their nodes.")


class RackNode(BaseModel):
    name: str
    state: str
    stage: str | None
    power_watts: float | None
    inlet_celsius: float | None
    exhaust_celsius: float | None


class Rack(BaseModel):
    name: str
    hall: str
    row: str
    power_budget_w: int | None
    cooling_w: int | None
    power_watts: float | None = Field(description="Sum of the nodes' current readings.")
    power_reporting: int = Field(description="How many nodes have a current power reading.")
    nodes: list[RackNode]


class Stage(BaseModel):
    node: str
    stage: str
    status: str
    run_id: int | None
    attempt: int
    reason: str | None
    detail: Any
    updated_at: float
    event_id: int


class CheckResult(BaseModel):
    check: str
    status: str
    detail: str | None
    hint: str | None = Field(description="Remediation hint (`data.hint` or `data.remediation` of the check).")
    run_id: int | None
    ts: float
    data: Any


class Firmware(BaseModel):
    component: str
    target: str | None
    installed: Any
    ok: bool | None


class Node(BaseModel):
    name: str
    state: str
    stage: str | None
    inventory: dict[str, Any] | None = Field(description="Inventory facts; never credentials.")
    stages: list[Stage]
    checks: list[CheckResult] = Field(description="The latest result of each check, failures first.")
    check_history: int
    firmware: list[Firmware]
    flag: Flag | None
    burnin: list[dict[str, Any]]
    metrics: list[str] = Field(description="Telemetry metrics recorded for the node.")
    events: list[Event]


class Series(BaseModel):
    label: str
    labels: dict[str, Any] | None
    points: list[tuple[float, float | None]]


class Telemetry(BaseModel):
    node: str
    metric: str
    series: list[Series]


class Verdict(BaseModel):
    node: str
    status: str
    reasons: Any
    metrics: Any


class NodeThroughput(BaseModel):
    node: str
    tokens_per_s: float
    ratio: float | None = Field(description="Against the run's median: stragglers stand out below ~0.85.")


class Throughput(BaseModel):
    median: float | None
    nodes: list[NodeThroughput]


class LossCurve(BaseModel):
    node: str
    points: list[tuple[int, float]]


class Burnin(BaseModel):
    run: Run
    results: list[Verdict]
    counts: dict[str, int]
    throughput: Throughput
    loss: list[LossCurve]
    quarantined: list[Flag]


class Events(BaseModel):
    events: list[Event]
    last_id: int = Field(description="Pass as `after` to get only what is newer.")
