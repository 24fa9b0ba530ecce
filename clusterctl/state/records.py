"""What the store hands back: plain frozen records, JSON-ready through `as_dict`.

Callers never see SQLAlchemy rows, so the store can change how it stores a fact
without every reader changing with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


class _Record:
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Run(_Record):
    id: int
    kind: str
    status: str
    started_at: float
    finished_at: float | None
    inventory: str | None
    args: Any
    summary: Any


@dataclass(frozen=True)
class NodeStage(_Record):
    node: str
    stage: str
    status: str
    run_id: int | None
    attempt: int
    reason: str | None
    detail: Any
    updated_at: float
    event_id: int


@dataclass(frozen=True)
class Event(_Record):
    id: int
    ts: float
    run_id: int | None
    node: str | None
    stage: str | None
    kind: str
    payload: Any


@dataclass(frozen=True)
class Check(_Record):
    id: int
    run_id: int | None
    node: str
    check: str
    status: str
    detail: str | None
    data: Any
    ts: float


@dataclass(frozen=True)
class Sample(_Record):
    """One telemetry reading; `ts` None means "now" when it is recorded."""

    node: str
    metric: str
    value: float | None
    ts: float | None = None
    labels: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class BurninResult(_Record):
    id: int
    run_id: int | None
    node: str
    status: str
    reasons: Any
    metrics: Any
    ts: float


@dataclass(frozen=True)
class Flag(_Record):
    node: str
    quarantined: bool
    reason: str | None
    since: float
    source: str | None


class Failure(NamedTuple):
    node: str
    stage: str
    reason: str | None


class NewCheck(NamedTuple):
    """One check result to write with `Transaction.record_checks`; `ts` None means "now"."""

    node: str
    check: str
    status: str
    detail: str | None = None
    data: Any = None
    ts: float | None = None


class NewTransition(NamedTuple):
    """One node's stage change to write with `Transaction.record_transitions` (with its event)."""

    node: str
    stage: str
    status: str
    reason: str | None = None
    detail: Any = None


class NewEvent(NamedTuple):
    """One event to write with `Transaction.record_events`."""

    kind: str
    node: str | None = None
    stage: str | None = None
    payload: Any = None
