"""Event retention: each node keeps its recent events in full; older ones fold into one count per kind.

A 12,500-node site writes tens of events per node per provision, check round and rollout, so
the event log grows with time, not with the fleet; unbounded, every reader that scans it (the
journal at resume, `events`, `/metrics`) slows down month by month. The policy bounds it per node:
an event is kept while it is among its node's newest `keep_per_node` and younger than `keep_days`;
others are deleted and counted, per kind, in the node's one `events.compacted` event (its payload:
`{"counts": {kind: n}, "first_ts", "last_ts"}`), which each compaction replaces with the merged
counts. So the table holds at most `keep_per_node` + 1 compactable rows per node.

Never compacted, whatever their age, because commands read them as state: events of a run not yet
finished (a crashed run is resumed from them), the provision journal's keyed events (intents,
outcomes and notes carry `payload.key`: exactly-once flashing reads the newest of each), the
maintenance ledger (`stage = maintain`), quarantines (`burnin release` reads how a node was
drained), XIDs (`/metrics` counts them, and a counter must not go down), and events with no node
(a handful per run).

It runs where it costs nothing: after the monitor's telemetry compaction, at most once per
`every_s`; and on demand with `clusterctl events --compact`. Batches of nodes, each its own
transaction, so it never holds the writer lock for long and a kill leaves each node compacted or not.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from clusterctl.errors import StateError
from clusterctl.state import schema

if TYPE_CHECKING:
    from clusterctl.state.store import Store

COMPACTED = "events.compacted"
DAY_S = 86_400.0
PROTECTED_KINDS = ("gpu.xid", "quarantine.applied", "quarantine.released", "lease.taken_over")
PROTECTED_STAGES = ("maintain",)


@dataclass(frozen=True)
class EventRetention:
    keep_days: float = 90.0
    keep_per_node: int = 1_000
    every_s: float = 3_600.0  # how often the monitor loop runs it
    nodes_per_batch: int = 200


@dataclass(frozen=True)
class EventCompaction:
    nodes: int
    deleted: int

    def as_dict(self) -> dict[str, int]:
        return {"nodes": self.nodes, "deleted": self.deleted}


def compact_events(store: Store, policy: EventRetention | None = None, *, now: float | None = None) -> EventCompaction:
    """Apply the policy once; returns how many nodes were compacted and events deleted."""
    policy = policy or EventRetention()
    now = time.time() if now is None else now
    try:
        nodes = _candidates(store, policy, now - policy.keep_days * DAY_S)
        touched = deleted = 0
        for start in range(0, len(nodes), policy.nodes_per_batch):
            with store.transaction() as tx:
                for node in nodes[start : start + policy.nodes_per_batch]:
                    gone = _compact_node(tx, node, policy, now - policy.keep_days * DAY_S)
                    touched, deleted = touched + bool(gone), deleted + gone
    except sa.exc.DBAPIError as exc:
        raise StateError(f"cannot compact events in {store.url}: {exc.orig or exc}") from exc
    return EventCompaction(touched, deleted)


def _candidates(store: Store, policy: EventRetention, cutoff: float) -> list[str]:
    """Nodes over their quota or with an event older than the cutoff: one grouped query."""
    e = schema.events
    query = (sa.select(e.c.node).where(e.c.node.is_not(None), e.c.kind != COMPACTED).group_by(e.c.node)
             .having(sa.or_(sa.func.count() > policy.keep_per_node, sa.func.min(e.c.ts) < cutoff)))
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]


def _compact_node(tx: Any, node: str, policy: EventRetention, cutoff: float) -> int:
    e, r = schema.events, schema.runs
    conn = tx.connection
    rows = conn.execute(
        sa.select(e.c.id, e.c.ts, e.c.kind, e.c.stage, e.c.payload, r.c.finished_at, e.c.run_id)
        .select_from(e.outerjoin(r, e.c.run_id == r.c.id))
        .where(e.c.node == node).order_by(e.c.id.desc())
    ).all()
    doomed: list[int] = []
    counts: Counter[str] = Counter()
    previous: Any = None
    first_ts, last_ts = float("inf"), float("-inf")
    kept = 0
    for row in rows:
        if row.kind == COMPACTED:
            previous = previous or row
            doomed.append(row.id)
            continue
        if _is_state(row):
            continue
        if kept < policy.keep_per_node and row.ts >= cutoff:
            kept += 1
            continue
        doomed.append(row.id)
        counts[row.kind] += 1
        first_ts, last_ts = min(first_ts, row.ts), max(last_ts, row.ts)
    if not counts:
        return 0
    if previous is not None and isinstance(previous.payload, dict):
        counts.update({str(k): int(v) for k, v in (previous.payload.get("counts") or {}).items()})
        first_ts = min(first_ts, float(previous.payload.get("first_ts", first_ts)))
        last_ts = max(last_ts, float(previous.payload.get("last_ts", last_ts)))
    for start in range(0, len(doomed), 500):
        conn.execute(e.delete().where(e.c.id.in_(doomed[start : start + 500])))
    tx.event(COMPACTED, node=node, ts=last_ts,
             payload={"counts": dict(sorted(counts.items())), "first_ts": first_ts, "last_ts": last_ts})
    return len(doomed) - (previous is not None)


def _is_state(row: Any) -> bool:
    """An event some command reads back as state (see the module doc)."""
    if row.run_id is not None and row.finished_at is None:
        return True
    if row.kind in PROTECTED_KINDS or row.stage in PROTECTED_STAGES:
        return True
    return isinstance(row.payload, dict) and "key" in row.payload
