"""Telemetry retention: raw samples for a day, then one 5-minute average per series, then nothing.

Chosen so a 12,500-node fleet swept every minute keeps a day of full detail for incident work and
a quarter of 5-minute points for trends. Compaction is idempotent: a bucket that already holds a
single row (an earlier average, or a lone sample) is left as it is, so running it twice changes
nothing. It works node by node in bounded batches, each its own transaction, so it never holds the
writer lock for long and a kill leaves every node either compacted or untouched.

Series are grouped in Python, not SQL: PostgreSQL's `json` type has no equality, so it cannot
GROUP BY the labels column.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from clusterctl.errors import StateError
from clusterctl.state import schema
from clusterctl.state.connect import WRITE

if TYPE_CHECKING:
    from clusterctl.state.store import Store

DAY_S = 86_400.0


@dataclass(frozen=True)
class CompactionPolicy:
    raw_for_s: float = DAY_S
    bucket_s: float = 300.0
    keep_for_s: float = 90 * DAY_S
    nodes_per_batch: int = 200


@dataclass(frozen=True)
class CompactionResult:
    deleted: int
    written: int

    def as_dict(self) -> dict[str, int]:
        return {"deleted": self.deleted, "written": self.written}


def compact(store: Store, policy: CompactionPolicy | None = None, *, now: float | None = None) -> CompactionResult:
    policy = policy or CompactionPolicy()
    now = time.time() if now is None else now
    raw_cutoff = now - policy.raw_for_s
    t = schema.telemetry
    try:
        with store.engine.connect() as conn:
            nodes = [r[0] for r in conn.execute(sa.select(t.c.node).where(t.c.ts < raw_cutoff).distinct())]
        deleted = written = 0
        with _writer(store) as conn:
            deleted += conn.execute(t.delete().where(t.c.ts < now - policy.keep_for_s)).rowcount or 0
        for start in range(0, len(nodes), policy.nodes_per_batch):
            with _writer(store) as conn:
                d, w = _compact_nodes(conn, nodes[start : start + policy.nodes_per_batch], raw_cutoff, policy)
                deleted, written = deleted + d, written + w
    except sa.exc.DBAPIError as exc:
        raise StateError(f"cannot compact telemetry in {store.url}: {exc.orig or exc}") from exc
    return CompactionResult(deleted, written)


class _writer:
    """A write transaction outside `Store.transaction`: compaction writes no events, so it needs no event lock."""

    def __init__(self, store: Store) -> None:
        self._conn = store.engine.connect().execution_options(**{WRITE: True})

    def __enter__(self) -> sa.Connection:
        self._conn.begin()
        return self._conn

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._conn.commit()
            else:
                self._conn.rollback()
        finally:
            self._conn.close()


def _compact_nodes(conn: sa.Connection, nodes: list[str], cutoff: float,
                   policy: CompactionPolicy) -> tuple[int, int]:
    t = schema.telemetry
    rows = conn.execute(
        sa.select(t.c.id, t.c.node, t.c.metric, t.c.labels, t.c.ts, t.c.value)
        .where(t.c.node.in_(nodes), t.c.ts < cutoff)
    )
    buckets: dict[tuple[str, str, str, int], list[Any]] = defaultdict(list)
    for row in rows:
        key = (row.node, row.metric, json.dumps(row.labels, sort_keys=True), int(row.ts // policy.bucket_s))
        buckets[key].append(row)
    doomed: list[int] = []
    averages: list[dict[str, Any]] = []
    for (node, metric, _labels, bucket), members in buckets.items():
        if len(members) < 2:
            continue
        values = [m.value for m in members if m.value is not None]
        doomed.extend(m.id for m in members)
        averages.append({"node": node, "metric": metric, "labels": members[0].labels,
                         "ts": bucket * policy.bucket_s,
                         "value": sum(values) / len(values) if values else None})
    for start in range(0, len(doomed), 500):
        conn.execute(t.delete().where(t.c.id.in_(doomed[start : start + 500])))
    if averages:
        conn.execute(t.insert(), averages)
    return len(doomed), len(averages)
