"""What `clusterctl trends` shows: a node's figures per metric, or the fleet's regressions and early warnings.

Both read by index (figures by node, metric and time; findings by time), so months of a large fleet
answer without reading every figure.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from clusterctl.check import history as stored
from clusterctl.check.judge import DAY_S

if TYPE_CHECKING:
    from clusterctl.state.store import Store


def _iso(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""


def _start(store: Store, days: float) -> float:
    """`--since` counts back from the newest round (a lab runs ahead in simulated time), else from now."""
    newest = stored.findings(store, since=0, judges=("risk", "peers", "history", "rate"), limit=1)
    latest = max(time.time(), newest[0].ts if newest else 0.0)
    return latest - days * DAY_S


def node_trends(store: Store, node: str, days: float, metric: str | None = None) -> dict[str, Any]:
    since = _start(store, days)
    series = stored.node_series(store, node, since, metric)
    found = stored.findings(store, since=since, node=node, metric=metric)
    summary = {}
    for name, points in sorted(series.items()):
        values = [v for _, v in points]
        first, last = values[0], values[-1]
        change = f"{(last - first) / first:+.1%}" if first else f"{last - first:+g}"
        summary[name] = {"rounds": len(points), "first": first, "last": last, "min": min(values),
                         "max": max(values), "change": change, "points": [[t, v] for t, v in points]}
    return {"node": node, "since": since, "since_iso": _iso(since), "series": summary,
            "regressions": [dict(f.as_dict(), when=_iso(f.ts), since_iso=_iso(f.since)) for f in found]}


def fleet_trends(store: Store, days: float, metric: str | None, top: int) -> dict[str, Any]:
    since = _start(store, days)
    found = stored.findings(store, since=since, metric=metric)
    latest = stored.latest_runs(store)
    risks = [f for f in stored.run_findings(store, latest[0]) if f.judge == "risk"] if latest else []
    ranked = sorted(risks, key=lambda f: (-(f.value or 0), f.node))[:top]
    return {"since": since, "since_iso": _iso(since),
            "regressions": [dict(f.as_dict(), when=_iso(f.ts), since_iso=_iso(f.since)) for f in found],
            "early_warning": [{"node": f.node, "score": f.value, "explanation": f.detail} for f in ranked]}
