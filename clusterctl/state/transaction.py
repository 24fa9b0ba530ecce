"""The write side of the store: one `Transaction` is one database transaction.

Every method writes inside the caller's transaction, so a group of writes lands
together or not at all; a killed process leaves the store as it was at the last
commit. A stage change and its `stage.<status>` event are always written together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from clusterctl.errors import StateError
from clusterctl.state import schema
from clusterctl.state.payloads import Cleaner, clean, clean_text
from clusterctl.state.records import NewCheck, NewEvent, NewTransition, Sample
from clusterctl.state.schema import CheckStatus, RunStatus, StageStatus


class Transaction:
    """Writes bound to one open transaction; get one from `Store.transaction()`."""

    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection
        # Both dialects spell upsert as INSERT ... ON CONFLICT DO UPDATE, through their own `insert`;
        # imported here so a SQLite user never loads the PostgreSQL dialect.
        self._upsert: Callable[[sa.Table], Any]
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._upsert = pg_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            self._upsert = sqlite_insert

    @property
    def connection(self) -> sa.Connection:
        """The open connection, for writes that live beside the store's own (leases)."""
        return self._conn

    def upsert(self, table: sa.Table) -> Any:
        """INSERT ... ON CONFLICT for this dialect (callers add `on_conflict_do_update`)."""
        return self._upsert(table)

    # -- runs -------------------------------------------------------------------------------------------

    def start_run(self, kind: str, *, inventory: str | None = None, args: Any = None) -> int:
        now = time.time()
        run_id = self._conn.execute(
            schema.runs.insert()
            .values(kind=kind, status=RunStatus.running.value, started_at=now, inventory=inventory,
                    args=clean(args))
            .returning(schema.runs.c.id)
        ).scalar_one()
        self.event("run.started", run_id=run_id, payload={"kind": kind}, ts=now)
        return int(run_id)

    def finish_run(self, run_id: int, status: RunStatus | str, summary: Any = None) -> None:
        status = RunStatus(status)
        now = time.time()
        updated = self._conn.execute(
            schema.runs.update()
            .where(schema.runs.c.id == run_id)
            .values(status=status.value, finished_at=now, summary=clean(summary))
        ).rowcount
        if updated != 1:
            raise StateError(f"no run {run_id} in the state store")
        self.event(f"run.{status.value}", run_id=run_id, payload=summary, ts=now)

    # -- node stages --------------------------------------------------------------------------------------

    def set_stage(
        self,
        node: str,
        stage: str,
        status: StageStatus | str,
        *,
        run_id: int | None,
        reason: str | None = None,
        detail: Any = None,
    ) -> int:
        """Record a transition and its event; returns the event id.

        `attempt` counts starts: it goes up by one each time the status becomes `running`.
        """
        return self.set_stages([node], stage, status, run_id=run_id, reason=reason, detail=detail)[0]

    def set_stages(
        self,
        nodes: Iterable[str],
        stage: str,
        status: StageStatus | str,
        *,
        run_id: int | None,
        reason: str | None = None,
        detail: Any = None,
    ) -> list[int]:
        """The same transition for many nodes (a wave), written with one statement per table."""
        status = StageStatus(status).value
        return self.record_transitions([NewTransition(n, stage, status, reason, detail) for n in nodes],
                                       run_id=run_id)

    def record_transitions(self, changes: Iterable[NewTransition], *, run_id: int | None) -> list[int]:
        """Stage changes of many nodes (each with its `stage.<status>` event) in one statement per
        table; returns the event ids in the order given. A (node, stage) appears at most once."""
        now = time.time()
        cleaner = Cleaner()
        rows = []
        for c in changes:
            status = StageStatus(c.status)
            reason, detail = cleaner.optional_text(c.reason), cleaner(c.detail)
            rows.append((c.node, c.stage, status, reason, detail))
        if not rows:
            return []
        event_ids = self._insert_events([
            {"ts": now, "run_id": run_id, "node": node, "stage": stage, "kind": f"stage.{status.value}",
             "payload": {k: v for k, v in (("reason", reason), ("detail", detail)) if v is not None} or None}
            for node, stage, status, reason, detail in rows
        ])
        table = schema.node_stages
        stmt = self._upsert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.node, table.c.stage],
            set_={
                "status": stmt.excluded.status,
                "run_id": stmt.excluded.run_id,
                "attempt": table.c.attempt + stmt.excluded.attempt,
                "reason": stmt.excluded.reason,
                "detail": stmt.excluded.detail,
                "updated_at": stmt.excluded.updated_at,
                "event_id": stmt.excluded.event_id,
            },
        )
        self._conn.execute(
            stmt,
            [
                {"node": node, "stage": stage, "status": status.value, "run_id": run_id,
                 "attempt": 1 if status is StageStatus.running else 0, "reason": reason, "detail": detail,
                 "updated_at": now, "event_id": event_id}
                for (node, stage, status, reason, detail), event_id in zip(rows, event_ids, strict=True)
            ],
        )
        return event_ids

    # -- events -------------------------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        *,
        node: str | None = None,
        stage: str | None = None,
        run_id: int | None = None,
        payload: Any = None,
        ts: float | None = None,
    ) -> int:
        row = {"ts": time.time() if ts is None else ts, "run_id": run_id, "node": node, "stage": stage,
               "kind": kind, "payload": clean(payload)}
        return self._insert_events([row])[0]

    def record_events(self, events: Iterable[NewEvent], *, run_id: int | None = None) -> list[int]:
        """Many events in one statement, ids in the order given (one per node at the end of a wave)."""
        now = time.time()
        cleaner = Cleaner()
        rows = [{"ts": now, "run_id": run_id, "node": e.node, "stage": e.stage, "kind": e.kind,
                 "payload": cleaner(e.payload)} for e in events]
        return self._insert_events(rows) if rows else []

    def _insert_events(self, rows: list[dict[str, Any]]) -> list[int]:
        if len(rows) == 1:
            return [int(self._conn.execute(
                schema.events.insert().values(rows[0]).returning(schema.events.c.id)
            ).scalar_one())]
        result = self._conn.execute(
            schema.events.insert().returning(schema.events.c.id, sort_by_parameter_order=True), rows
        )
        return [int(i) for i in result.scalars()]

    # -- results ------------------------------------------------------------------------------------------

    def record_check(
        self,
        node: str,
        check: str,
        status: CheckStatus | str,
        *,
        run_id: int | None = None,
        detail: str | None = None,
        data: Any = None,
        ts: float | None = None,
    ) -> int:
        status = CheckStatus(status)
        return int(self._conn.execute(
            schema.checks.insert()
            .values(run_id=run_id, node=node, check=check, status=status.value, detail=clean_text(detail),
                    data=clean(data), ts=time.time() if ts is None else ts)
            .returning(schema.checks.c.id)
        ).scalar_one())

    def record_checks(self, checks: Iterable[NewCheck], *, run_id: int | None = None) -> int:
        """Many check results in one executemany (a validation's whole fleet); returns how many."""
        now = time.time()
        cleaner = Cleaner()
        rows = [
            {"run_id": run_id, "node": c.node, "check": c.check, "status": _check_status(c.status),
             "detail": cleaner.optional_text(c.detail), "data": cleaner(c.data), "ts": now if c.ts is None else c.ts}
            for c in checks
        ]
        if rows:
            self._conn.execute(schema.checks.insert(), rows)
        return len(rows)

    def record_telemetry(self, samples: Iterable[Sample]) -> int:
        """Append readings in one executemany; returns how many were written."""
        now = time.time()
        cleaner = Cleaner()
        rows = [
            {"node": s.node, "metric": s.metric, "value": _reading(s.value),
             "ts": now if s.ts is None else s.ts, "labels": cleaner(s.labels)}
            for s in samples
        ]
        if rows:
            self._conn.execute(schema.telemetry.insert(), rows)
        return len(rows)

    def record_burnin(
        self,
        node: str,
        status: str,
        *,
        run_id: int | None = None,
        reasons: Any = None,
        metrics: Any = None,
        ts: float | None = None,
    ) -> int:
        return int(self._conn.execute(
            schema.burnin_results.insert()
            .values(run_id=run_id, node=node, status=status, reasons=clean(reasons), metrics=clean(metrics),
                    ts=time.time() if ts is None else ts)
            .returning(schema.burnin_results.c.id)
        ).scalar_one())

    # -- flags --------------------------------------------------------------------------------------------

    def set_flag(
        self, node: str, *, quarantined: bool, reason: str | None = None, source: str | None = None
    ) -> int:
        """Quarantine or release a node; the change is also an event (`flag.quarantined`/`flag.cleared`)."""
        now = time.time()
        reason = clean_text(reason)
        table = schema.node_flags
        stmt = self._upsert(table).values(node=node, quarantined=quarantined, reason=reason, since=now,
                                          source=source)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.node],
            set_={"quarantined": stmt.excluded.quarantined, "reason": stmt.excluded.reason,
                  "since": stmt.excluded.since, "source": stmt.excluded.source},
        )
        self._conn.execute(stmt)
        kind = "flag.quarantined" if quarantined else "flag.cleared"
        return self.event(kind, node=node, payload={"reason": reason, "source": source}, ts=now)


_CHECK_STATUSES: dict[object, str] = {s.value: s.value for s in CheckStatus}


def _check_status(status: CheckStatus | str) -> str:
    try:
        return _CHECK_STATUSES[status]
    except (KeyError, TypeError):
        return CheckStatus(status).value  # raises the same ValueError as `record_check`


def _reading(value: float | None) -> float | None:
    """A stored reading: a finite float, or NULL for none, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
