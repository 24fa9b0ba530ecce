"""The periodic checks on the dashboard: a node's check history with its peers' band, and the fleet's current
regressions and early-warning list, from the figures and findings the check rounds stored (clusterctl/check).

The peers' band is the one the judge flags outside of (clusterctl/check/judge.py, `against_peers`): per round,
the median of the node's peers (the same GPU model, the same round) ± max(`peer_mads` × their median absolute
deviation, `peer_share` × |median|), with the thresholds of the newest check run's policy. A figure outside it on
its bad side is what a "peers" regression names, so the chart shows why a round was or was not flagged.

Bounded reads, never one per metric per round: the node's series and findings through `trends.node_trends`,
its rounds through the figures' (node, metric, ts) index, then the bands those rounds stored (check_bands, a
few rows a round). Only a round without stored bands (older than the table) costs the fleet's figures of it,
by the run_id index, one query per CHUNK rounds, and is kept in the BandCache.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request

from clusterctl.check import history as stored
from clusterctl.check.figures import metric as catalog
from clusterctl.check.judge import MIN_PEERS, Band, Policy, band_of
from clusterctl.dashboard.api import JSON, ErrorBody
from clusterctl.state import schema

if TYPE_CHECKING:
    from clusterctl.dashboard.views import ReadModel

MAX_ROUNDS = 90
"""Rounds a chart's band covers, so one page never ranks more than 90 rounds of the fleet's figures."""
TOP = 20

router = APIRouter(prefix="/api/v1", default_response_class=JSON, tags=["checks"], responses={
    401: {"model": ErrorBody, "description": "No or wrong token."},
    503: {"model": ErrorBody, "description": "The state store cannot be read."}})


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def _policy(model: ReadModel) -> Policy:
    """The thresholds the newest round judged by (stored in its run's args), else the defaults."""
    run = model.store.latest_run("check")
    saved = run.args.get("policy") if run is not None and isinstance(run.args, dict) else None
    if not isinstance(saved, dict):
        return Policy()
    keep = {k: saved[k] for k in ("window_days", "max_drop", "max_rise_c", "rate_days", "min_history", "peer_mads",
                                  "peer_share", "per_day", "metrics") if k in saved}
    try:
        return Policy(**keep)
    except TypeError:
        return Policy()


def _gpu(model: ReadModel, node: str) -> str | None:
    assert model.inventory is not None
    g = model.inventory.nodes[node].hardware.gpu
    return g.model if g else None


def _peers(model: ReadModel, node: str) -> set[str] | None:
    """Nodes of the node's GPU model, as the judge groups them; None (everyone) without an inventory."""
    inv = model.inventory
    if inv is None or node not in inv.nodes:
        return None
    mine = _gpu(model, node)
    return {n for n in inv.nodes if _gpu(model, n) == mine}


def change_words(judge: str, metric_name: str, value: float | None) -> str:
    """A finding's size as an operator reads it: a share, degrees, or growth per day."""
    if value is None:
        return ""
    m = catalog(metric_name)
    if judge == "rate":
        return f"+{value:,.1f} {m.unit if m else ''}/day".replace("  ", " ")
    if m is not None and m.kind == "heat" and judge == "history":
        return f"+{value:.1f} {m.unit}"
    sign = "−" if m is not None and m.kind == "level" else "+"
    return f"{sign}{value:.1%}"


class BandCache:
    """The peer median and spread per metric and GPU model of rounds that stored no bands, kept once computed.

    Such a round's figures never change, so its band is computed once per dashboard process (2,000 nodes,
    SQLite: about 60 ms a round). Bounded: the oldest entries go first.
    """

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.known: dict[tuple[int, str, str | None], tuple[float, float, int]] = {}

    def get(self, key: tuple[int, str, str | None]) -> tuple[float, float, int] | None:
        return self.known.get(key)

    def put(self, key: tuple[int, str, str | None], value: tuple[float, float, int]) -> None:
        self.known[key] = value
        while len(self.known) > self.size:
            del self.known[next(iter(self.known))]


def _spread(model: ReadModel, ids: list[int], metrics: list[str], peers: set[str] | None
            ) -> dict[tuple[int, str], tuple[float, float, int]]:
    """{(run_id, metric): (median, median absolute deviation, peers)}: the fleet's figures of those rounds,
    one query per CHUNK run ids (the run_id index)."""
    t = schema.check_figures
    values: dict[tuple[int, str], list[float]] = {}
    for start in range(0, len(ids), stored.CHUNK):
        query = sa.select(t.c.run_id, t.c.metric, t.c.node, t.c.value).where(
            t.c.run_id.in_(ids[start:start + stored.CHUNK]), t.c.metric.in_(metrics))
        for run_id, name, other, value in model._rows(query):  # noqa: SLF001 - the guarded reader
            if value is not None and (peers is None or other in peers):
                values.setdefault((run_id, name), []).append(value)
    out = {}
    for key, vals in values.items():
        b = band_of(vals)
        out[key] = (b.median, b.mad, b.peers)
    return out


def _from_rollup(stored: dict[str | None, tuple[float, float, int]] | None, group: str | None,
                 whole_fleet: bool) -> tuple[float, float, int] | None:
    """The stored band of the node's GPU model; without an inventory (everyone is a peer) only a round of one model
    has a stored band that is the whole fleet's."""
    if not stored:
        return None
    if whole_fleet:
        return next(iter(stored.values())) if len(stored) == 1 else None
    return stored.get(group, (0.0, 0.0, 0))  # a round with bands but none of this model: no peers of it


def bands(model: ReadModel, node: str, since: float, metrics: list[str], policy: Policy,
          cache: BandCache | None = None) -> dict[str, list[list[float]]]:
    """{metric: [[ts, median, low, high], ...oldest first]} over the node's newest MAX_ROUNDS rounds.

    Each round stored its bands (check_bands, computed by the peers judge); a round stored before that table
    existed, or a fleet of several models seen without an inventory, is computed from the fleet's figures."""
    t = schema.check_figures
    rounds = model._rows(sa.select(t.c.run_id, sa.func.max(t.c.ts)).where(  # noqa: SLF001
        t.c.node == node, t.c.ts >= since, t.c.run_id.is_not(None)).group_by(t.c.run_id)
        .order_by(sa.func.max(t.c.ts).desc()).limit(MAX_ROUNDS))
    when = {run_id: ts for run_id, ts in rounds}
    if not when or not metrics:
        return {}
    cache = cache if cache is not None else BandCache()
    peers = _peers(model, node)
    group = _gpu(model, node) if peers is not None else None
    rollup = stored.stored_bands(model._rows, sorted(when), metrics)  # noqa: SLF001
    known: dict[tuple[int, str], tuple[float, float, int]] = {}
    for r in when:
        for m in metrics:
            hit = _from_rollup(rollup.get((r, m)), group, peers is None)
            if hit is None:
                hit = cache.get((r, m, group))
            if hit is not None:
                known[(r, m)] = hit
    missing = sorted({r for r in when for m in metrics if (r, m) not in known})
    if missing:
        found = _spread(model, missing, metrics, peers)
        for r in missing:
            for m in metrics:
                if (r, m) not in known:
                    known[(r, m)] = found.get((r, m), (0.0, 0.0, 0))  # (.., 0): no figure that round
                    cache.put((r, m, group), known[(r, m)])
    out: dict[str, list[list[float]]] = {}
    for run_id, ts in when.items():
        for name in metrics:
            median, mad, count = known[(run_id, name)]
            if count < MIN_PEERS:  # the judge does not compare fewer
                continue
            width = Band(median, mad, count).width(policy.for_metric(name))
            out.setdefault(name, []).append([ts, median, median - width, median + width])
    return {name: sorted(points) for name, points in out.items()}


def node_checks(model: ReadModel, node: str, days: float, cache: BandCache | None = None) -> dict[str, Any]:
    from clusterctl.check.trends import node_trends

    view = node_trends(model.store, node, days)
    policy = _policy(model)
    peer_metrics = [n for n in view["series"] if (m := catalog(n)) is not None and m.peers]
    band = bands(model, node, view["since"], peer_metrics, policy, cache)
    flagged: dict[str, set[float]] = {}
    for f in view["regressions"]:
        flagged.setdefault(f["metric"], set()).add(f["ts"])
    series = {}
    for name, s in view["series"].items():
        m = catalog(name)
        series[name] = {"words": m.words if m else name, "unit": m.unit if m else "", "kind": m.kind if m else "info",
                        "points": s["points"], "band": band.get(name, []), "regressions": sorted(flagged.get(name, ())),
                        "change": s["change"]}
    regressions = [{**f, "change_words": change_words(f["judge"], f["metric"], f["change"])}
                   for f in view["regressions"]]
    return {"node": node, "since": view["since"], "since_iso": view["since_iso"],
            "band": {"peer_mads": policy.peer_mads, "peer_share": policy.peer_share,
                     "rule": "peers' median ± max(peer_mads × MAD, peer_share × |median|), same GPU model and round"},
            "series": series, "regressions": regressions}


def fleet_checks(model: ReadModel, top: int = TOP) -> dict[str, Any]:
    """Each node's regressions and score from the check round that last judged it (what /metrics exports)."""
    now = stored.current(model._rows)  # noqa: SLF001
    regressions = []
    for node, facts in sorted(now.items()):
        for f in facts["regressions"]:
            regressions.append({"node": node, "metric": f.metric, "judge": f.judge, "change": f.value,
                                "change_words": change_words(f.judge, f.metric, f.value), "since": f.since,
                                "since_iso": _iso(f.since), "detail": f.detail, "action": f.remediation,
                                "run": f.run_id})
    ranked = sorted(((n, f) for n, f in now.items() if f["risk"] > 0), key=lambda kv: (-kv[1]["risk"], kv[0]))
    warning = [{"node": n, "score": round(f["risk"], 2), "explanation": f["risk_words"], "checked_at": f["checked_at"]}
               for n, f in ranked[:top]]
    return {"nodes_checked": len(now), "regressions": regressions, "early_warning": warning}


def _model(request: Request) -> ReadModel:
    return request.app.state.model  # type: ignore[no-any-return]


@router.get("/nodes/{node}/checks", summary="A node's check figures per metric with its peers' band and regressions")
def node_checks_api(request: Request, node: Annotated[str, Path(min_length=1, max_length=255)],
                    days: Annotated[float, Query(gt=0, le=3650, allow_inf_nan=False)] = 30.0) -> JSON:
    state = request.app.state
    if getattr(state, "check_bands", None) is None:
        state.check_bands = BandCache()
    return JSON(node_checks(_model(request), node, days, state.check_bands))


@router.get("/checks", summary="The fleet's current regressions and the early-warning list, worst first")
def fleet_checks_api(request: Request, top: Annotated[int, Query(ge=1, le=500)] = TOP) -> JSON:
    return JSON(fleet_checks(_model(request), top))
