"""Judging a round's figures beyond the absolute rules: against the node's peers and its own history.

- **peers**: same GPU model, same round; a figure on the bad side of the median by more than `peer_mads`
  median absolute deviations *and* by more than `peer_share` of the median (the burn-in verdict's rule,
  clusterctl/burnin/verdict.py: a fleet of identical nodes has a MAD of zero, and a few percent is noise).
- **history**: a `level` more than `max_drop` below the node's rolling median over `window_days`, a
  `heat` more than `max_rise_c` above it; a `counter` growing faster than its limit per day over the
  last `rate_days`. A counter that went down was reset (reboot, driver reload): its growth is its value.

Pure functions over plain numbers, so the lab test, the benchmark and a real fleet judge alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from clusterctl.check.figures import Figure, Metric, metric

DAY_S = 86_400.0
MIN_PEERS = 3
"""Fewer figures than this in a group are not judged against each other."""
Series = Sequence[tuple[float, float]]
"""(ts, value) oldest first: a node's earlier figures of one metric."""


@dataclass(frozen=True)
class Policy:
    window_days: float = 7.0
    max_drop: float = 0.05
    max_rise_c: float = 5.0
    rate_days: float = 1.0
    min_history: int = 3
    peer_mads: float = 4.0
    peer_share: float = 0.10
    per_day: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the counters' limits per day, by metric name."""
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per metric, any of the settings above (window_days, max_drop, ...): the limits file's `metrics:`."""

    def limit(self, m: Metric) -> float | None:
        return self.per_day.get(m.name, m.per_day)

    def for_metric(self, name: str) -> Policy:
        """The policy one metric is judged by: the defaults with that metric's own settings over them."""
        own: dict[str, Any] = dict(self.metrics.get(name) or {})
        if not own:
            return self
        per_day = {**self.per_day, name: own.pop("per_day")} if "per_day" in own else self.per_day
        if "min_history" in own:
            own["min_history"] = int(own["min_history"])
        return replace(self, per_day=per_day, metrics={}, **own)

    def as_dict(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "max_drop": self.max_drop, "max_rise_c": self.max_rise_c,
                "rate_days": self.rate_days, "peer_mads": self.peer_mads, "peer_share": self.peer_share,
                "min_history": self.min_history, "per_day": dict(self.per_day),
                "metrics": {k: dict(v) for k, v in self.metrics.items()}}


@dataclass(frozen=True)
class Finding:
    node: str
    metric: str
    judge: str  # peers | history | rate
    value: float
    """The size of the change: a share (peers, history of a level), degrees (heat), or growth per day (rate)."""
    since: float | None
    detail: str
    remediation: str
    ratio: float
    """How far past its limit: 1.0 is at the limit. The early-warning score adds these up."""

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "metric": self.metric, "judge": self.judge, "change": round(self.value, 4),
                "since": self.since, "detail": self.detail, "remediation": self.remediation}


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.1f}"
    return f"{text} {unit}"


def _where(fig: Figure) -> str:
    if not fig.labels:
        return ""
    # {"gpu": 3} reads "gpu 3"; {"fan": "Fan 3"} (the BMC's own name) reads "Fan 3".
    return " (" + ", ".join(str(v) if str(v).lower().startswith(k) else f"{k} {v}" for k, v in fig.labels.items()) + ")"


# -- peers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """One round's peers of one GPU model in one metric: what `against_peers` compares each of them with."""

    median: float
    mad: float
    """The median absolute deviation from the median."""
    peers: int

    def width(self, policy: Policy) -> float:
        """How far from the median a figure may be before it is an outlier (on its bad side)."""
        return max(policy.peer_mads * self.mad, policy.peer_share * abs(self.median))


def peer_groups(figures: Mapping[str, Mapping[str, Figure]], models: Mapping[str, str | None]
                ) -> dict[tuple[str | None, str], list[Figure]]:
    """{(GPU model, metric): this round's figures} for the metrics judged against peers."""
    groups: dict[tuple[str | None, str], list[Figure]] = {}
    for node, mine in figures.items():
        for fig in mine.values():
            m = metric(fig.metric)
            if m is not None and m.peers:
                groups.setdefault((models.get(node), fig.metric), []).append(fig)
    return groups


def band_of(values: Sequence[float]) -> Band:
    median = statistics.median(values)
    return Band(median, statistics.median(abs(v - median) for v in values), len(values))


def peer_bands(figures: Mapping[str, Mapping[str, Figure]], models: Mapping[str, str | None]
               ) -> dict[tuple[str | None, str], Band]:
    """Every group's band, as the round stores it for the dashboard (groups too small to judge included)."""
    return {key: band_of([f.value for f in figs]) for key, figs in peer_groups(figures, models).items()}


def against_peers(figures: Mapping[str, Mapping[str, Figure]], models: Mapping[str, str | None],
                  policy: Policy) -> list[Finding]:
    """Outliers among the nodes of one GPU model in this round."""
    found = []
    for (_model, name), figs in peer_groups(figures, models).items():
        if len(figs) < MIN_PEERS:
            continue
        m = metric(name)
        assert m is not None
        own = policy.for_metric(name)
        band = band_of([f.value for f in figs])
        median = band.median
        if median == 0:
            continue
        for fig in figs:
            off = fig.value - median
            bad = -off if m.kind == "level" else off
            share = bad / abs(median)
            if bad > own.peer_mads * band.mad and share > own.peer_share:
                ratio = share / own.peer_share
                detail = (f"{m.words} {_fmt(fig.value, m.unit)}{_where(fig)} is {share:.1%} "
                          f"{'below' if m.kind == 'level' else 'above'} its {len(figs)} peers' median "
                          f"{_fmt(median, m.unit)}")
                found.append(Finding(fig.node, name, "peers", share, None, detail, m.remediation, ratio))
    return found


# -- the node's own history ---------------------------------------------------------------------------


def against_history(fig: Figure, ts: float, past: Series, policy: Policy) -> Finding | None:
    """This round's figure against the node's own earlier figures of the metric (None: nothing to say)."""
    m = metric(fig.metric)
    if m is None or m.kind == "info":
        return None
    policy = policy.for_metric(fig.metric)
    if m.kind == "counter":
        return _counter(fig, ts, past, m, policy)
    window = [(t, v) for t, v in past if ts - policy.window_days * DAY_S <= t < ts]
    if len(window) < policy.min_history:
        return None
    median = statistics.median(v for _, v in window)
    if m.kind == "level":
        if median <= 0:
            return None
        change = (median - fig.value) / median
        limit = policy.max_drop
        words = f"{change:.1%} below"
    else:
        change = fig.value - median
        limit = policy.max_rise_c
        words = f"{change:.1f} {m.unit} above"
    if change <= limit:
        return None
    since = _since(window, lambda v: (median - v) / median > limit / 10 if m.kind == "level"
                   else v - median > limit / 10, ts)
    detail = (f"{m.words} {_fmt(fig.value, m.unit)}{_where(fig)} is {words} its {policy.window_days:g}-day median "
              f"{_fmt(median, m.unit)}")
    return Finding(fig.node, fig.metric, "history", change, since, detail, m.remediation, change / limit)


def _since(window: Series, off: Any, now: float) -> float:
    """When the figure left its median: the first of the latest run of rounds that were off, else now."""
    since = now
    for t, v in reversed(window):
        if not off(v):
            break
        since = t
    return since


def counter_rate(fig: Figure, ts: float, past: Series, policy: Policy) -> tuple[float, float] | None:
    """(growth per day over the last `rate_days`, when it started growing), or None without a reference."""
    older = [(t, v) for t, v in past if t <= ts - policy.rate_days * DAY_S]
    if not older:
        return None
    t0, v0 = older[-1]
    days = (ts - t0) / DAY_S
    if days <= 0:
        return None
    growth = fig.value - v0 if fig.value >= v0 else fig.value
    return growth / days, _rising_since([*past, (ts, fig.value)])


def _rising_since(points: Series) -> float:
    """The first round of the latest unbroken run of rounds in which the counter grew."""
    since = points[-1][0]
    for (t, v), (_, prev) in zip(reversed(points[1:]), reversed(points[:-1]), strict=True):
        if v <= prev:
            break
        since = t
    return since


def _counter(fig: Figure, ts: float, past: Series, m: Metric, policy: Policy) -> Finding | None:
    limit = policy.limit(m)
    rate = counter_rate(fig, ts, past, policy)
    if limit is None or rate is None or rate[0] <= limit:
        return None
    per_day, started = rate
    detail = (f"{m.words}{_where(fig)} growing {per_day:,.1f} a day over the last {policy.rate_days:g} day(s) "
              f"(limit {limit:g} a day), now {_fmt(fig.value, m.unit)}")
    return Finding(fig.node, fig.metric, "rate", per_day, started, detail, m.remediation,
                   per_day / limit if limit else float(per_day > 0) * 10)
