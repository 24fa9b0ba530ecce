"""/metrics for periodic checks, from a round recorded through `clusterctl.check.round.record`: what
Alertmanager pages on (regressions, risk scores, when each node was last checked)."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from clusterctl.check.figures import Figure
from clusterctl.check.judge import Finding
from clusterctl.check.risk import Risk
from clusterctl.check.round import record
from clusterctl.dashboard.metrics import render
from clusterctl.dashboard.views import ReadModel
from clusterctl.inventory import load_inventory
from clusterctl.state.store import Store
from clusterctl.verdict import NodeVerdict

REPO = Path(__file__).resolve().parents[2]


def test_metrics_carry_the_latest_round_per_node(store_url: str) -> None:
    inventory = load_inventory(REPO / "inventories" / "lab.yaml")
    a, b, c = list(inventory.nodes)[:3]
    figures = {n: {"gpu.sm_clock_mhz": Figure(n, "gpu.sm_clock_mhz", 1980.0)} for n in (a, b, c)}
    slow = Finding(a, "gpu.sm_clock_mhz", "history", 0.07, 1.0, "7 % below", "run DCGM", 1.4)
    with Store.open(store_url) as store:
        before = time.time()
        first = record(store, [NodeVerdict(n) for n in (a, b, c)], 100.0, figures, [slow],
                       [Risk(a, 2.5, ["x"]), Risk(b, 0.0)], inventory=None, args=None)
        # A later round over b alone: a keeps its regression from the first, b its own clean round.
        record(store, [NodeVerdict(b)], 200.0, {b: figures[b]}, [], [Risk(b, 0.4, ["y"])], inventory=None,
               args=None)
        families = {f.name: f for f in text_string_to_metric_families(render(ReadModel(store, inventory)).decode())}
    regression = [(s.labels["node"], s.labels["metric"], s.labels["judge"], s.value)
                  for s in families["clusterctl_check_regression"].samples]
    assert regression == [(a, "gpu.sm_clock_mhz", "history", 1.0)]
    risk = {s.labels["node"]: s.value for s in families["clusterctl_node_risk_score"].samples}
    assert risk == {a: 2.5, b: 0.4, c: 0.0}
    last = {s.labels["node"]: s.value for s in families["clusterctl_check_last_run_timestamp_seconds"].samples}
    assert set(last) == {a, b, c} and all(before - 1 <= t <= time.time() + 1 for t in last.values())
    assert last[b] >= last[a]
    assert first > 0
