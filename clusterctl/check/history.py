"""The check rounds' figures and findings in the state store: written in bulk, read by index.

A node's history is read through (node, metric, ts); the fleet's regressions through the findings'
(ts) index, so `trends` over months of a large fleet never scans the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from clusterctl.state import schema

if TYPE_CHECKING:
    from clusterctl.check.figures import Figure
    from clusterctl.check.judge import Finding
    from clusterctl.check.risk import Risk
    from clusterctl.state.store import Store

CHUNK = 500  # nodes per IN (...): well under SQLite's bound on parameters


def write_round(store: Store, run_id: int, ts: float, figures: Iterable[Figure], findings: Iterable[Finding],
                risks: Iterable[Risk], models: Mapping[str, str | None] | None = None) -> None:
    """The round's figures, findings, risk scores, and its peers' bands per metric and GPU model (`models`,
    by node; without it every node is one group), computed as the peers judge computes them."""
    from clusterctl.check.judge import peer_bands

    figures = list(figures)
    by_node: dict[str, dict[str, Figure]] = {}
    for f in figures:
        by_node.setdefault(f.node, {})[f.metric] = f
    band_rows = [{"run_id": run_id, "metric": name, "model": model, "median": b.median, "mad": b.mad,
                  "peers": b.peers} for (model, name), b in peer_bands(by_node, models or {}).items()]
    fig_rows = [{"run_id": run_id, "node": f.node, "metric": f.metric, "value": f.value, "ts": ts,
                 "labels": f.labels} for f in figures]
    found_rows = [{"run_id": run_id, "node": f.node, "metric": f.metric, "judge": f.judge, "value": f.value,
                   "since": f.since, "detail": f.detail, "remediation": f.remediation, "ts": ts} for f in findings]
    found_rows += [{"run_id": run_id, "node": r.node, "metric": "risk", "judge": "risk", "value": r.score,
                    "since": None, "detail": r.words, "remediation": None, "ts": ts} for r in risks if r.score > 0]
    with store.transaction() as tx:
        if fig_rows:
            tx.connection.execute(schema.check_figures.insert(), fig_rows)
        if found_rows:
            tx.connection.execute(schema.check_findings.insert(), found_rows)
        if band_rows:
            tx.connection.execute(schema.check_bands.insert(), band_rows)


def stored_bands(read: Callable[[sa.Executable], list[Any]], run_ids: Sequence[int], metrics: Sequence[str]
                 ) -> dict[tuple[int, str], dict[str | None, tuple[float, float, int]]]:
    """{(run_id, metric): {GPU model: (median, MAD, peers)}} of the rounds that stored their bands (0006 on)."""
    t = schema.check_bands
    out: dict[tuple[int, str], dict[str | None, tuple[float, float, int]]] = {}
    for start in range(0, len(run_ids), CHUNK):
        query = sa.select(t.c.run_id, t.c.metric, t.c.model, t.c.median, t.c.mad, t.c.peers).where(
            t.c.run_id.in_(list(run_ids[start:start + CHUNK])), t.c.metric.in_(list(metrics))).order_by(t.c.id)
        for run_id, name, model, median, mad, peers in read(query):
            out.setdefault((run_id, name), {})[model] = (median, mad, peers)
    return out


def _read(store: Store, query: sa.Executable) -> list[Any]:
    return store._rows(query)  # noqa: SLF001 - the store's one guarded read path


def history(store: Store, nodes: Sequence[str], since: float, until: float,
            metrics: Sequence[str] | None = None) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{node: {metric: [(ts, value), ...oldest first]}} for since <= ts < until."""
    t = schema.check_figures
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for start in range(0, len(nodes), CHUNK):
        query = (sa.select(t.c.node, t.c.metric, t.c.ts, t.c.value)
                 .where(t.c.node.in_(list(nodes[start:start + CHUNK])), t.c.ts >= since, t.c.ts < until)
                 .order_by(t.c.ts))
        if metrics:
            query = query.where(t.c.metric.in_(list(metrics)))
        for node, metric, ts, value in _read(store, query):
            if value is not None:
                out.setdefault(node, {}).setdefault(metric, []).append((ts, value))
    return out


@dataclass(frozen=True)
class StoredFinding:
    run_id: int | None
    node: str
    metric: str
    judge: str
    value: float | None
    since: float | None
    detail: str | None
    remediation: str | None
    ts: float

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "node": self.node, "metric": self.metric, "judge": self.judge,
                "change": self.value, "since": self.since, "detail": self.detail, "remediation": self.remediation,
                "ts": self.ts}


def findings(store: Store, *, since: float, node: str | None = None, metric: str | None = None,
             judges: Sequence[str] = ("peers", "history", "rate"), limit: int = 1000) -> list[StoredFinding]:
    """Newest first."""
    t = schema.check_findings
    query = sa.select(t.c.run_id, t.c.node, t.c.metric, t.c.judge, t.c.value, t.c.since, t.c.detail,
                      t.c.remediation, t.c.ts).where(t.c.ts >= since, t.c.judge.in_(list(judges)))
    if node is not None:
        query = query.where(t.c.node == node)
    if metric is not None:
        query = query.where(t.c.metric == metric)
    return [StoredFinding(*row) for row in _read(store, query.order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit))]


def latest_runs(store: Store, limit: int = 1) -> list[int]:
    r = schema.runs
    query = sa.select(r.c.id).where(r.c.kind == "check").order_by(r.c.id.desc()).limit(limit)
    return [row[0] for row in _read(store, query)]


def run_findings(store: Store, run_id: int) -> list[StoredFinding]:
    t = schema.check_findings
    query = sa.select(t.c.run_id, t.c.node, t.c.metric, t.c.judge, t.c.value, t.c.since, t.c.detail,
                      t.c.remediation, t.c.ts).where(t.c.run_id == run_id).order_by(t.c.node, t.c.id)
    return [StoredFinding(*row) for row in _read(store, query)]


def node_series(store: Store, node: str, since: float, metric: str | None = None
                ) -> dict[str, list[tuple[float, float]]]:
    """One node's figures per metric since `since`, oldest first (the (node, metric, ts) index)."""
    return history(store, [node], since, float("inf"), [metric] if metric else None).get(node, {})


def current(read: Callable[[sa.Executable], list[Any]]) -> dict[str, dict[str, Any]]:
    """Per node, from the check run that last judged it: its regressions, risk score and check time.

    `read` runs a query (the store's or the dashboard's guarded reader)."""
    ns = schema.node_stages
    stages = read(sa.select(ns.c.node, ns.c.run_id, ns.c.updated_at).where(ns.c.stage == "check"))
    ids = sorted({run_id for _, run_id, _ in stages if run_id is not None})
    t = schema.check_findings
    found: dict[tuple[int, str], list[StoredFinding]] = {}
    for start in range(0, len(ids), CHUNK):
        query = sa.select(t.c.run_id, t.c.node, t.c.metric, t.c.judge, t.c.value, t.c.since, t.c.detail,
                          t.c.remediation, t.c.ts).where(t.c.run_id.in_(ids[start:start + CHUNK]))
        for row in read(query):
            found.setdefault((row[0], row[1]), []).append(StoredFinding(*row))
    nodes: dict[str, dict[str, Any]] = {}
    for node, run_id, updated_at in stages:
        mine = found.get((run_id, node), [])
        risk = next((f for f in mine if f.judge == "risk"), None)
        nodes[node] = {"checked_at": updated_at, "run": run_id,
                       "regressions": [f for f in mine if f.judge != "risk"],
                       "risk": (risk.value or 0.0) if risk else 0.0, "risk_words": risk.detail if risk else None}
    return nodes
