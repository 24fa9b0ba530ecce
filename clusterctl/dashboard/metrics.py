"""`/metrics`: the store's view of the fleet in Prometheus text format, computed at scrape time.

Names follow dcgm-exporter and node_exporter habits: a `clusterctl_` prefix, base units in the
name (`_watts`, `_celsius`, `_rpm`), `_total` on counters, and `node`, `rack`, `gpu` labels.
`clusterctl_node_state` carries one series per node, valued 1, with the state as a label: the
all-states-as-0/1 style of kube-state-metrics would cost six series per node (75,000 at 12,500
nodes) for no extra information. XIDs are counted per code as a label
(`clusterctl_xid_errors_total{xid="79"}`), because dcgm-exporter's DCGM_FI_DEV_XID_ERRORS gauge holds
only the last XID and so hides repeats (etc/default-counters.csv in github.com/NVIDIA/dcgm-exporter).
XIDs are read from `gpu.xid` events (payload `{"xid": 79, "gpu": 3}`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clusterctl.dashboard import states
from clusterctl.dashboard.views import FRESH_S
from clusterctl.monitor import names
from clusterctl.state import schema

if TYPE_CHECKING:
    from clusterctl.dashboard.views import ReadModel

XID_EVENT = "gpu.xid"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

NODE_GAUGES = {
    names.POWER_WATTS: ("clusterctl_node_power_watts", "Chassis power draw reported by the BMC."),
    names.INLET_CELSIUS: ("clusterctl_node_inlet_temperature_celsius", "Inlet (intake) air temperature."),
    names.EXHAUST_CELSIUS: ("clusterctl_node_exhaust_temperature_celsius", "Exhaust air temperature."),
    names.BMC_UP: ("clusterctl_bmc_up", "1 when the last monitor sweep got an answer from the BMC."),
}
LABELLED_GAUGES = {
    names.GPU_TEMPERATURE_CELSIUS: ("clusterctl_gpu_temperature_celsius", "GPU temperature from the BMC.", "gpu"),
    names.FAN_RPM: ("clusterctl_fan_speed_rpm", "Fan speed.", "fan"),
    names.PSU_OK: ("clusterctl_psu_healthy", "1 when the PSU reports Health OK.", "psu"),
    names.PSU_INPUT_WATTS: ("clusterctl_psu_input_watts", "PSU input power.", "psu"),
}

DOCUMENTED = (
    "clusterctl_node_state", "clusterctl_nodes", "clusterctl_check_failures_total", "clusterctl_rack_power_watts",
    "clusterctl_rack_power_budget_watts", "clusterctl_xid_errors_total", "clusterctl_burnin_tokens_per_second",
    "clusterctl_check_regression", "clusterctl_node_risk_score", "clusterctl_check_last_run_timestamp_seconds",
    *(n for n, _ in NODE_GAUGES.values()), *(n for n, _, _ in LABELLED_GAUGES.values()),
)


class StoreCollector(Collector):
    def __init__(self, model: ReadModel) -> None:
        self.model = model
        inv = model.inventory  # looked up once a scrape, not once a sample
        self._racks = {name: node.rack or "" for name, node in inv.nodes.items()} if inv is not None else {}

    def _rack(self, node: str) -> str:
        return self._racks.get(node, "")

    def collect(self) -> Iterator[Metric]:
        yield from self._states()
        yield from self._checks()
        yield from self._telemetry()
        yield from self._xids()
        yield from self._burnin()
        yield from self._periodic_checks()

    def _states(self) -> Iterator[Metric]:
        node_state = GaugeMetricFamily("clusterctl_node_state", "1 for the node's current state (label state).",
                                       labels=["node", "rack", "state", "stage"])
        counts = dict.fromkeys(states.ORDER, 0)
        for node, facts in self.model.node_facts().items():
            state = facts.state()
            counts[state] += 1
            node_state.add_metric([node, self._rack(node), state, facts.stage() or ""], 1)
        nodes = GaugeMetricFamily("clusterctl_nodes", "Nodes per state.", labels=["state"])
        for state, n in counts.items():
            nodes.add_metric([state], n)
        yield node_state
        yield nodes

    def _checks(self) -> Iterator[Metric]:
        c = schema.checks
        family = CounterMetricFamily("clusterctl_check_failures", "Failed check results recorded, per check.",
                                     labels=["node", "rack", "check"])
        rows = self.model._rows(
            sa.select(c.c.node, c.c.check, sa.func.count()).where(c.c.status == "fail").group_by(c.c.node, c.c.check)
        )
        for node, check, count in rows:
            family.add_metric([node, self._rack(node), check], int(count))
        yield family

    def _telemetry(self) -> Iterator[Metric]:
        latest = self.model.latest_values(None, list(NODE_GAUGES))
        racks: dict[str, float] = defaultdict(float)
        for metric, (name, doc) in NODE_GAUGES.items():
            family = GaugeMetricFamily(name, doc, labels=["node", "rack"])
            for node, values in latest.items():
                value = values.get(metric)
                if value is not None:
                    family.add_metric([node, self._rack(node)], value)
                    if metric == names.POWER_WATTS:
                        racks[self._rack(node)] += value
            yield family
        rack_power = GaugeMetricFamily("clusterctl_rack_power_watts", "Sum of the rack's node power draws.",
                                       labels=["rack", "hall"])
        budget = GaugeMetricFamily("clusterctl_rack_power_budget_watts", "The rack's power budget (inventory).",
                                   labels=["rack", "hall"])
        inv = self.model.inventory
        for rack in inv.racks.values() if inv is not None else []:
            if rack.name in racks:
                rack_power.add_metric([rack.name, rack.hall], racks[rack.name])
            if rack.power_budget_w is not None:
                budget.add_metric([rack.name, rack.hall], rack.power_budget_w)
        yield rack_power
        yield budget
        for metric, (name, doc, label) in LABELLED_GAUGES.items():
            family = GaugeMetricFamily(name, doc, labels=["node", "rack", label])
            for node, labels, value in self._last_sweep(metric):
                if value is not None:
                    family.add_metric([node, self._rack(node), str((labels or {}).get(label, ""))], value)
            yield family

    def _last_sweep(self, metric: str) -> list[Any]:
        """Every labelled sample of a node's newest sweep: found by time, since labels (JSON) cannot be grouped."""
        t = schema.telemetry
        newest = (sa.select(t.c.node, sa.func.max(t.c.ts).label("ts"))
                  .where(t.c.metric == metric, t.c.ts >= time.time() - FRESH_S)
                  .group_by(t.c.node).subquery())
        return self.model._rows(
            sa.select(t.c.node, t.c.labels, t.c.value)
            .join(newest, sa.and_(t.c.node == newest.c.node, t.c.ts == newest.c.ts))
            .where(t.c.metric == metric)
        )

    def _xids(self) -> Iterator[Metric]:
        e = schema.events
        family = CounterMetricFamily("clusterctl_xid_errors", "NVIDIA XID errors seen, per XID code.",
                                     labels=["node", "rack", "gpu", "xid"])
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        for node, payload in self.model._rows(sa.select(e.c.node, e.c.payload).where(e.c.kind == XID_EVENT)):
            if isinstance(payload, dict) and payload.get("xid") is not None:
                counts[(node or "", str(payload.get("gpu", "")), str(payload["xid"]))] += 1
        for (node, gpu, xid), n in sorted(counts.items()):
            family.add_metric([node, self._rack(node), gpu, xid], n)
        yield family

    def _burnin(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("clusterctl_burnin_tokens_per_second",
                                   "Slowest rank's training throughput in the node's latest burn-in.",
                                   labels=["node", "rack", "run"])
        b = schema.burnin_results
        latest = sa.select(sa.func.max(b.c.id).label("id")).group_by(b.c.node).subquery()
        for node, run_id, metrics in self.model._rows(
            sa.select(b.c.node, b.c.run_id, b.c.metrics).join(latest, b.c.id == latest.c.id)
        ):
            value = metrics.get("local_tokens_per_s") if isinstance(metrics, dict) else None
            if isinstance(value, int | float):
                family.add_metric([node, self._rack(node), str(run_id or "")], float(value))
        yield family

    def _periodic_checks(self) -> Iterator[Metric]:
        """From the check round that last judged each node (clusterctl/check): what Alertmanager pages on."""
        from clusterctl.check.history import current

        regression = GaugeMetricFamily(
            "clusterctl_check_regression", "1 for each regression the node's latest check round named "
            "(judge: peers, history or rate).", labels=["node", "rack", "metric", "judge"])
        risk = GaugeMetricFamily("clusterctl_node_risk_score", "Early-warning score of the node's latest check "
                                 "round: 1 is a trend at its limit; 0 nothing trending.", labels=["node", "rack"])
        last = GaugeMetricFamily("clusterctl_check_last_run_timestamp_seconds", "When a check round last judged "
                                 "the node (Unix time).", labels=["node", "rack"])
        for node, facts in sorted(current(self.model._rows).items()):
            rack = self._rack(node)
            for f in {(f.metric, f.judge) for f in facts["regressions"]}:
                regression.add_metric([node, rack, *f], 1)
            risk.add_metric([node, rack], round(float(facts["risk"]), 3))
            last.add_metric([node, rack], float(facts["checked_at"]))
        yield regression
        yield risk
        yield last


def render(model: ReadModel) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(model))
    return generate_latest(registry)
