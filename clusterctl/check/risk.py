"""A node's early-warning score: how fast its counters climb and its figures drift, before any of them
crosses a limit, so parts are swapped in a maintenance window instead of after a crash.

Each trend adds its share of the limit that would make it a regression (correctable ECC growing 50 a
day against a limit of 100 adds 0.5; a fan 3 % below its median against a 5 % limit adds 0.6); a
pending row remap adds 1 per GPU, as the GPU needs a reset before the spare row is used (NVIDIA's row
remapping guide). The words list the trends worst first.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterctl.check.figures import Figure, metric
from clusterctl.check.judge import DAY_S, Policy, Series, counter_rate

NOISE = 0.1
"""Trends under a tenth of their limit are not mentioned: a healthy fleet's figures wobble that much."""


@dataclass(frozen=True)
class Risk:
    node: str
    score: float
    reasons: list[str] = field(default_factory=list)

    @property
    def words(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "no counter or figure is trending"

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "score": round(self.score, 2), "explanation": self.words}


def node_risk(node: str, figures: Mapping[str, Figure], ts: float, history: Mapping[str, Series],
              base: Policy) -> Risk:
    parts: list[tuple[float, str]] = []
    for fig in figures.values():
        m = metric(fig.metric)
        if m is None:
            continue
        past = history.get(fig.metric, ())
        policy = base.for_metric(fig.metric)
        if m.name == "gpu.remap_pending" and fig.value > 0:
            parts.append((fig.value, f"{fig.value:.0f} GPU(s) with a row remap pending (reset to apply it)"))
        elif m.kind == "counter":
            limit = policy.limit(m)
            rate = counter_rate(fig, ts, past, policy)
            if limit and rate is not None and rate[0] > 0:
                parts.append((rate[0] / limit, f"{m.words} +{rate[0]:,.1f}/day (limit {limit:g}/day)"))
        elif m.kind in ("level", "heat"):
            window = [v for t, v in past if ts - policy.window_days * DAY_S <= t < ts]
            if len(window) < policy.min_history:
                continue
            median = statistics.median(window)
            if m.kind == "level" and median > 0:
                drop = (median - fig.value) / median
                parts.append((drop / policy.max_drop, f"{m.words} {drop:.1%} below its median "
                                                       f"(limit {policy.max_drop:.0%})"))
            elif m.kind == "heat":
                rise = fig.value - median
                parts.append((rise / policy.max_rise_c, f"{m.words} +{rise:.1f} {m.unit} over its median "
                                                         f"(limit {policy.max_rise_c:g})"))
    kept = sorted((p for p in parts if p[0] >= NOISE), key=lambda p: -p[0])
    return Risk(node, sum(share for share, _ in kept), [f"{words} [{share:.2f}]" for share, words in kept])


def worst_first(risks: list[Risk], top: int | None = None) -> list[Risk]:
    ranked = sorted((r for r in risks if r.score > 0), key=lambda r: (-r.score, r.node))
    return ranked[:top] if top else ranked
