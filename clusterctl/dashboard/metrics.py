"""`/metrics`: the store's view of the fleet in Prometheus text format, node-level series only.

What Alertmanager pages on, one series per node each: state, BMC up, power, inlet temperature, the
slowest fan, unhealthy PSUs, GPUs missing, the early-warning score and the last check time; sparse
ones only where something happened (failed checks, regressions, XIDs); per rack, power against its
budget. The per-fan, per-PSU and per-GPU readings (41 a node, 520,000 series at 12,500 nodes, more
than Prometheus's 10 s scrape timeout to write) stay in the store, where the dashboard's node page and
`/api/v1/nodes/NODE/telemetry` show them: the kube-state-metrics / node_exporter habit of summarising
per object and leaving the parts to a drill-down. The series list is in the README ("Prometheus").

Names follow dcgm-exporter and node_exporter habits: a `clusterctl_` prefix, base units in the name
(`_watts`, `_celsius`, `_rpm`), `_total` on counters. Node series carry only `node`; the rack is on
`clusterctl_node_state{node,rack,state,stage}` (one series per node, valued 1, with the state as a
label: the all-states-as-0/1 style of kube-state-metrics would cost six per node), so
`... * on(node) group_left(rack) clusterctl_node_state` adds it, the way `kube_pod_info` joins: a
second label on every sample is a fifth of the exposition's time at this size.

The sweep figures come from each node's newest monitor sweep (every sample of a sweep has the sweep's
time, and `bmc_up` is written for every node in every sweep, 0 when its BMC did not answer), no older
than FRESH_S: one grouped query, whatever the fleet's size. XIDs are counted per code as a label
(`clusterctl_xid_errors_total{xid="79"}`), because dcgm-exporter's DCGM_FI_DEV_XID_ERRORS gauge holds
only the last XID and so hides repeats (etc/default-counters.csv in github.com/NVIDIA/dcgm-exporter);
they are read from `gpu.xid` events (payload `{"xid": 79, "gpu": 3}`).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from clusterctl.dashboard import states
from clusterctl.dashboard.views import FRESH_S
from clusterctl.monitor import names
from clusterctl.state import schema

if TYPE_CHECKING:
    from clusterctl.dashboard.views import ReadModel

XID_EVENT = "gpu.xid"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NODE = ["node"]

DOCUMENTED = (
    "clusterctl_node_state", "clusterctl_nodes", "clusterctl_bmc_up", "clusterctl_node_power_watts",
    "clusterctl_node_inlet_temperature_celsius", "clusterctl_node_fan_speed_min_rpm", "clusterctl_node_psus_unhealthy",
    "clusterctl_node_gpus_missing", "clusterctl_rack_power_watts", "clusterctl_rack_power_budget_watts",
    "clusterctl_check_failures_total", "clusterctl_xid_errors_total", "clusterctl_check_regression",
    "clusterctl_node_risk_score", "clusterctl_check_last_run_timestamp_seconds",
)


class Family:
    """One metric family, written straight to the text format (version 0.0.4) as its samples come.

    Why not prometheus_client's metric families and `generate_latest`: at 12,500 nodes (115,000
    samples) they took 2.1 s of a 2.9 s render, most of it checking and escaping the same label
    names on every sample. Here the label names are ours, fixed, and put in order once; only label
    values are escaped. prometheus_client's own parser reads the result in the tests, and a test holds
    this writer to `generate_latest` byte for byte.
    """

    def __init__(self, name: str, doc: str, labels: Sequence[str] = NODE, *, kind: str = "gauge") -> None:
        self.name = f"{name}_total" if kind == "counter" else name
        doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        self.lines = [f"# HELP {self.name} {doc}\n# TYPE {self.name} {kind}\n"]
        self._order = sorted(range(len(labels)), key=lambda i: labels[i])  # the exposition's label order
        fields = ",".join(f'{labels[i]}="{{}}"' for i in self._order)
        self._line = f"{self.name}{{{{{fields}}}}} " if labels else f"{self.name} "
        self._one = f'{self.name}{{{labels[0]}="' if len(labels) == 1 else None  # most series: `node` alone

    def add(self, values: Sequence[str], value: float) -> None:
        if self._one is not None:
            self.lines.append(f'{self._one}{label_value(values[0])}"}} {number(value)}\n')
        else:
            self.lines.append(self._line.format(*(label_value(values[i]) for i in self._order)) + number(value) + "\n")


def label_value(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return v


def number(v: float) -> str:
    """Go's float formatting, as Prometheus writes it: repr, except infinities, NaN and large exponents."""
    s = repr(float(v))
    if "n" in s or (v > 0 and s.find(".") > 6):
        from prometheus_client.utils import floatToGoString

        return str(floatToGoString(v))
    return s


class Sweep(NamedTuple):
    """What /metrics says of a node's newest monitor sweep: each figure None when the sweep had no such reading."""

    up: float | None
    power: float | None
    inlet: float | None
    slowest_fan: float | None
    psus_unhealthy: float | None
    gpus: int


class StoreCollector:
    def __init__(self, model: ReadModel) -> None:
        self.model = model
        inv = model.inventory  # looked up once a scrape, not once a sample
        self._racks = {name: node.rack or "" for name, node in inv.nodes.items()} if inv is not None else {}
        self._gpus = {name: node.gpus for name, node in inv.nodes.items()} if inv is not None else {}

    def collect(self) -> Iterator[Family]:
        yield from self._states()
        yield from self._checks()
        yield from self._sweep_figures()
        yield from self._xids()
        yield from self._periodic_checks()

    def _states(self) -> Iterator[Family]:
        node_state = Family("clusterctl_node_state", "1 for the node's current state (label state); "
                            "its rack label is the one to join node series on.", ["node", "rack", "state", "stage"])
        counts = dict.fromkeys(states.ORDER, 0)
        racks = self._racks
        for node, facts in self.model.node_facts().items():
            state = facts.state()
            counts[state] += 1
            node_state.add((node, racks.get(node, ""), state, facts.stage() or ""), 1)
        nodes = Family("clusterctl_nodes", "Nodes per state.", ["state"])
        for state, n in counts.items():
            nodes.add((state,), n)
        yield node_state
        yield nodes

    def _checks(self) -> Iterator[Family]:
        c = schema.checks
        family = Family("clusterctl_check_failures", "Failed check results recorded, per check.", ["node", "check"],
                        kind="counter")
        rows = self.model._rows(
            sa.select(c.c.node, c.c.check, sa.func.count()).where(c.c.status == "fail").group_by(c.c.node, c.c.check)
        )
        for node, check, count in rows:
            family.add((node, check), int(count))
        yield family

    def sweeps(self) -> dict[str, Sweep]:
        """{node: its newest sweep no older than FRESH_S}, summed up in SQL, one row per node.

        The newest `bmc_up` per node gives the sweep's time (the (metric, ts) index); each figure is then
        a correlated subquery on the (node, metric, ts) index: a join grouped by node instead costs
        twice as much at 12,500 nodes, in sorting the sweep's 400,000 rows for the GROUP BY.
        """
        t = schema.telemetry
        newest = (sa.select(t.c.node, sa.func.max(t.c.ts).label("ts"))
                  .where(t.c.metric == names.BMC_UP, t.c.ts >= time.time() - FRESH_S)
                  .group_by(t.c.node).subquery())
        part = t.alias("part")

        def of(metric: str, figure: Any) -> Any:
            return (sa.select(figure(part.c.value))
                    .where(part.c.node == newest.c.node, part.c.metric == metric, part.c.ts == newest.c.ts)
                    .scalar_subquery())

        rows = self.model._rows(sa.select(
            newest.c.node, of(names.BMC_UP, sa.func.max), of(names.POWER_WATTS, sa.func.sum),
            of(names.INLET_CELSIUS, sa.func.max), of(names.FAN_RPM, sa.func.min),
            of(names.PSU_OK, lambda v: sa.func.count(v) - sa.func.sum(v)),
            of(names.GPU_TEMPERATURE_CELSIUS, sa.func.count),
        ))
        return {node: Sweep(*figures) for node, *figures in rows}

    def _sweep_figures(self) -> Iterator[Family]:
        sweeps = self.sweeps()

        def family(name: str, doc: str, value: Callable[[str, Sweep], float | None]) -> Family:
            out = Family(name, doc)
            for node, sweep in sweeps.items():
                v = value(node, sweep)
                if v is not None:
                    out.add((node,), v)
            return out

        def missing(node: str, sweep: Sweep) -> float | None:
            # Only when the BMC reports GPU sensors at all: one that has none says nothing, not "all gone".
            want = self._gpus.get(node)
            return float(max(0, want - sweep.gpus)) if sweep.gpus and want is not None else None

        yield family("clusterctl_bmc_up", "1 when the newest monitor sweep got an answer from the node's BMC.",
                     lambda _n, s: s.up)
        yield family("clusterctl_node_power_watts", "Chassis power draw reported by the BMC (newest sweep).",
                     lambda _n, s: s.power)
        yield family("clusterctl_node_inlet_temperature_celsius", "The hottest inlet (intake) air reading.",
                     lambda _n, s: s.inlet)
        yield family("clusterctl_node_fan_speed_min_rpm", "The node's slowest fan (0 for a stopped one).",
                     lambda _n, s: s.slowest_fan)
        yield family("clusterctl_node_psus_unhealthy", "PSUs not reporting Health OK: above 0, the node has "
                     "lost power redundancy.", lambda _n, s: s.psus_unhealthy)
        yield family("clusterctl_node_gpus_missing", "GPUs the inventory names that the BMC did not report a "
                     "temperature for (fell off the bus, or powered off).", missing)
        yield from self._racks_power(sweeps)

    def _racks_power(self, sweeps: dict[str, Sweep]) -> Iterator[Family]:
        racks: dict[str, float] = defaultdict(float)
        for node, sweep in sweeps.items():
            if sweep.power is not None:
                racks[self._racks.get(node, "")] += sweep.power
        rack_power = Family("clusterctl_rack_power_watts", "Sum of the rack's node power draws.", ["rack", "hall"])
        budget = Family("clusterctl_rack_power_budget_watts", "The rack's power budget (inventory).", ["rack", "hall"])
        inv = self.model.inventory
        for rack in inv.racks.values() if inv is not None else []:
            if rack.name in racks:
                rack_power.add((rack.name, rack.hall), racks[rack.name])
            if rack.power_budget_w is not None:
                budget.add((rack.name, rack.hall), rack.power_budget_w)
        yield rack_power
        yield budget

    def _xids(self) -> Iterator[Family]:
        """Sparse: only nodes with an XID, so the GPU label stays (it is what the RMA names)."""
        e = schema.events
        family = Family("clusterctl_xid_errors", "NVIDIA XID errors seen, per XID code.", ["node", "gpu", "xid"],
                        kind="counter")
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        for node, payload in self.model._rows(sa.select(e.c.node, e.c.payload).where(e.c.kind == XID_EVENT)):
            if isinstance(payload, dict) and payload.get("xid") is not None:
                counts[(node or "", str(payload.get("gpu", "")), str(payload["xid"]))] += 1
        for key, n in sorted(counts.items()):
            family.add(key, n)
        yield family

    def _periodic_checks(self) -> Iterator[Family]:
        """From the check round that last judged each node (clusterctl/check): what Alertmanager pages on."""
        from clusterctl.check.history import current

        regression = Family("clusterctl_check_regression", "1 for each regression the node's latest check round "
                            "named (judge: peers, history or rate).", ["node", "metric", "judge"])
        risk = Family("clusterctl_node_risk_score", "Early-warning score of the node's latest check round: 1 is a "
                      "trend at its limit; 0 nothing trending.")
        last = Family("clusterctl_check_last_run_timestamp_seconds", "When a check round last judged the node "
                      "(Unix time).")
        for node, facts in sorted(current(self.model._rows).items()):
            for f in sorted({(f.metric, f.judge) for f in facts["regressions"]}):
                regression.add((node, *f), 1)
            risk.add((node,), round(float(facts["risk"]), 3))
            last.add((node,), float(facts["checked_at"]))
        yield regression
        yield risk
        yield last


def render(model: ReadModel) -> bytes:
    return "".join(line for family in StoreCollector(model).collect() for line in family.lines).encode()


def changes(model: ReadModel) -> tuple[Any, ...]:
    """The newest id of every table /metrics reads, in one statement: equal markers, equal data.

    Stage changes and quarantines are written with an event (clusterctl/state/transaction.py), so the
    events' id covers node_stages and node_flags."""
    tables = (schema.telemetry, schema.events, schema.checks, schema.check_findings, schema.burnin_results)
    return tuple(model._rows(sa.select(*(sa.select(sa.func.max(t.c.id)).scalar_subquery() for t in tables)))[0])


class Exposition:
    """The last rendered text, served again while the store has not changed and it is younger than `ttl_s`.

    Why: Prometheus is run as an HA pair, each server scraping every target, and a scrape interval
    shorter than the monitor's sweep finds the store unchanged; each such scrape would otherwise cost
    a full render (1.4 s of CPU at 12,500 nodes, on the machine that also runs the controller).
    `ttl_s` bounds what time alone changes (a sweep ageing past FRESH_S). One render at a time: a
    scraper that arrives during a render waits for its text instead of starting another.
    """

    def __init__(self, model: ReadModel, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._marker: tuple[Any, ...] | None = None
        self._at = 0.0

    def __call__(self) -> bytes:
        with self._lock:
            marker = changes(self.model)
            now = self.clock()
            if self._body is None or marker != self._marker or now - self._at >= self.ttl_s:
                self._body, self._marker, self._at = render(self.model), marker, now
            return self._body
