"""The state store: what happened to every node, run by run, in SQLite or PostgreSQL.

Writers serialise on one lock per store (SQLite's write lock, a transaction-scoped
advisory lock on PostgreSQL). That makes event ids follow commit order, so a reader
that asks for `id > last_seen` never skips an event committed late with a lower id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from clusterctl.errors import StateError
from clusterctl.state import schema
from clusterctl.state.connect import WRITE, create_engine, display_url
from clusterctl.state.migrate import ensure_schema
from clusterctl.state.records import (
    BurninResult,
    Check,
    Event,
    Failure,
    Flag,
    NodeStage,
    Run,
    Sample,
)
from clusterctl.state.schema import CheckStatus, RunStatus, StageStatus
from clusterctl.state.transaction import Transaction

_PG_WRITER_LOCK = 0x636C7573_74657202


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = display_url(engine.url)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, and create or upgrade the schema; any failure is a one-line `StateError`."""
        engine = create_engine(url)
        try:
            ensure_schema(engine)
        except StateError:
            engine.dispose()
            raise
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            where = display_url(engine.url)
            raise StateError(f"cannot open the state store {where}: {_first_line(exc)}") from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Group writes: all of them are committed when the block ends, none if it raises."""
        try:
            with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_WRITER_LOCK)))
                yield Transaction(conn)
        except sa.exc.DBAPIError as exc:
            raise StateError(f"the state store {self.url} refused a write: {_first_line(exc)}") from exc

    def start_run(self, kind: str, *, inventory: str | None = None, args: Any = None) -> int:
        with self.transaction() as tx:
            return tx.start_run(kind, inventory=inventory, args=args)

    def finish_run(self, run_id: int, status: RunStatus | str, summary: Any = None) -> None:
        with self.transaction() as tx:
            tx.finish_run(run_id, status, summary)

    def set_stage(self, node: str, stage: str, status: StageStatus | str, *, run_id: int | None,
                  reason: str | None = None, detail: Any = None) -> int:
        with self.transaction() as tx:
            return tx.set_stage(node, stage, status, run_id=run_id, reason=reason, detail=detail)

    def set_stages(self, nodes: Iterable[str], stage: str, status: StageStatus | str, *, run_id: int | None,
                   reason: str | None = None, detail: Any = None) -> list[int]:
        with self.transaction() as tx:
            return tx.set_stages(nodes, stage, status, run_id=run_id, reason=reason, detail=detail)

    def event(self, kind: str, *, node: str | None = None, stage: str | None = None,
              run_id: int | None = None, payload: Any = None) -> int:
        with self.transaction() as tx:
            return tx.event(kind, node=node, stage=stage, run_id=run_id, payload=payload)

    def record_check(self, node: str, check: str, status: CheckStatus | str, *, run_id: int | None = None,
                     detail: str | None = None, data: Any = None) -> int:
        with self.transaction() as tx:
            return tx.record_check(node, check, status, run_id=run_id, detail=detail, data=data)

    def record_telemetry(self, samples: Iterable[Sample]) -> int:
        with self.transaction() as tx:
            return tx.record_telemetry(samples)

    def record_burnin(self, node: str, status: str, *, run_id: int | None = None, reasons: Any = None,
                      metrics: Any = None) -> int:
        with self.transaction() as tx:
            return tx.record_burnin(node, status, run_id=run_id, reasons=reasons, metrics=metrics)

    def set_flag(self, node: str, *, quarantined: bool, reason: str | None = None,
                 source: str | None = None) -> int:
        with self.transaction() as tx:
            return tx.set_flag(node, quarantined=quarantined, reason=reason, source=source)

    # -- reading ------------------------------------------------------------------------------------------

    def _rows(self, query: sa.Executable) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except sa.exc.DBAPIError as exc:
            raise StateError(f"cannot read the state store {self.url}: {_first_line(exc)}") from exc

    def run(self, run_id: int) -> Run | None:
        rows = self._rows(sa.select(schema.runs).where(schema.runs.c.id == run_id))
        return Run(**rows[0]._mapping) if rows else None

    def runs(self, limit: int = 20) -> list[Run]:
        """Newest first."""
        query = sa.select(schema.runs).order_by(schema.runs.c.id.desc()).limit(limit)
        return [Run(**r._mapping) for r in self._rows(query)]

    def latest_run(self, kind: str | None = None) -> Run | None:
        query = sa.select(schema.runs).order_by(schema.runs.c.id.desc()).limit(1)
        if kind is not None:
            query = query.where(schema.runs.c.kind == kind)
        rows = self._rows(query)
        return Run(**rows[0]._mapping) if rows else None

    def stage_summary(self, run_id: int | None = None) -> dict[str, dict[str, int]]:
        """{stage: {status: nodes}} over each node's latest state (last set by that run, if given).

        Stages come in the order they were reached (by their oldest current row), which is
        the pipeline's order without the store having to know the pipeline.
        """
        t = schema.node_stages
        query = sa.select(t.c.stage, t.c.status, sa.func.count(), sa.func.min(t.c.event_id)).group_by(
            t.c.stage, t.c.status
        )
        if run_id is not None:
            query = query.where(t.c.run_id == run_id)
        summary: dict[str, dict[str, int]] = {}
        first: dict[str, int] = {}
        for stage, status, count, oldest in self._rows(query):
            summary.setdefault(stage, {})[status] = int(count)
            first[stage] = min(first.get(stage, oldest), oldest)
        return {stage: summary[stage] for stage in sorted(summary, key=first.__getitem__)}

    def failing(self, run_id: int | None = None) -> list[Failure]:
        t = schema.node_stages
        query = sa.select(t.c.node, t.c.stage, t.c.reason).where(t.c.status == StageStatus.failed.value)
        if run_id is not None:
            query = query.where(t.c.run_id == run_id)
        return [Failure(*r) for r in self._rows(query.order_by(t.c.stage, t.c.node))]

    def node_stages(self, node: str | None = None) -> list[NodeStage]:
        t = schema.node_stages
        query = sa.select(t).order_by(t.c.node, t.c.event_id)
        if node is not None:
            query = query.where(t.c.node == node)
        return [NodeStage(**r._mapping) for r in self._rows(query)]

    def events(
        self,
        after_id: int = 0,
        *,
        node: str | Iterable[str] | None = None,
        stage: str | None = None,
        run_id: int | None = None,
        kind: str | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[Event]:
        """Events with id > after_id, oldest first; `newest` picks the last `limit` instead of the first.

        `node` is one name or several (an expanded hostlist).
        """
        t = schema.events
        query = sa.select(t).where(t.c.id > after_id)
        if isinstance(node, str):
            query = query.where(t.c.node == node)
        elif node is not None:
            query = query.where(t.c.node.in_(list(node)))
        for column, value in ((t.c.stage, stage), (t.c.run_id, run_id), (t.c.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(t.c.id.desc() if newest else t.c.id)
        if limit is not None:
            query = query.limit(limit)
        found = [Event(**r._mapping) for r in self._rows(query)]
        return found[::-1] if newest else found

    def last_event_id(self) -> int:
        return int(self._rows(sa.select(sa.func.coalesce(sa.func.max(schema.events.c.id), 0)))[0][0])

    def checks(self, node: str, *, run_id: int | None = None) -> list[Check]:
        t = schema.checks
        query = sa.select(t).where(t.c.node == node).order_by(t.c.ts, t.c.id)
        if run_id is not None:
            query = query.where(t.c.run_id == run_id)
        return [Check(**r._mapping) for r in self._rows(query)]

    def telemetry(self, node: str, metric: str, since: float | None = None) -> list[Sample]:
        t = schema.telemetry
        query = (sa.select(t.c.node, t.c.metric, t.c.value, t.c.ts, t.c.labels)
                 .where(t.c.node == node, t.c.metric == metric).order_by(t.c.ts, t.c.id))
        if since is not None:
            query = query.where(t.c.ts >= since)
        return [Sample(**r._mapping) for r in self._rows(query)]

    def burnin(self, run_id: int) -> list[BurninResult]:
        t = schema.burnin_results
        query = sa.select(t).where(t.c.run_id == run_id).order_by(t.c.node, t.c.id)
        return [BurninResult(**r._mapping) for r in self._rows(query)]

    def flags(self, *, quarantined_only: bool = False) -> list[Flag]:
        t = schema.node_flags
        query = sa.select(t).order_by(t.c.node)
        if quarantined_only:
            query = query.where(t.c.quarantined.is_(True))
        return [Flag(**r._mapping) for r in self._rows(query)]


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return (text.strip().splitlines() or ["unknown error"])[0]
